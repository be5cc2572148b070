// The page is a raw string so that the binary serves it without files beside it or a build step.
#include "server/chat_page.h"

namespace hlwq::server {

namespace {

constexpr std::string_view kChatPage = R"page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hlwq chat</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: 8px 12px; background: #223; color: #eee; display: flex; gap: 12px; flex-wrap: wrap; align-items: center; }
  header label { font-size: 13px; }
  header input { font-size: 13px; }
  #system { width: 28em; }
  #log { flex: 1; overflow-y: auto; padding: 12px; background: #f6f6f8; }
  .turn { max-width: 52em; margin: 0 0 10px 0; padding: 8px 10px; border-radius: 6px; white-space: pre-wrap; }
  .user { background: #dde6ff; margin-left: auto; }
  .assistant { background: #fff; border: 1px solid #ddd; }
  .speed { font-size: 11px; color: #777; margin-top: 4px; }
  .error { background: #fdd; }
  form { display: flex; gap: 8px; padding: 8px 12px; border-top: 1px solid #ccc; }
  #prompt { flex: 1; font-size: 15px; padding: 6px; }
  button { font-size: 15px; }
</style>
</head>
<body>
<header>
  <strong>hlwq</strong><span id="model"></span>
  <label>system <input id="system" placeholder="system prompt (optional)"></label>
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7" style="width:4em"></label>
  <label>max tokens <input id="max_tokens" type="number" min="1" value="256" style="width:5em"></label>
  <label>API key <input id="key" type="password" style="width:8em"></label>
  <button id="clear" type="button">clear</button>
</header>
<div id="log"></div>
<form id="form">
  <input id="prompt" autocomplete="off" placeholder="message" autofocus>
  <button id="send" type="submit">send</button>
  <button id="stop" type="button" disabled>stop</button>
</form>
<script>
const log = document.getElementById('log');
const history = [];
let controller = null;

function add(role, text) {
  const div = document.createElement('div');
  div.className = 'turn ' + role;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

function headers() {
  const h = {'Content-Type': 'application/json'};
  const key = document.getElementById('key').value;
  if (key) h['Authorization'] = 'Bearer ' + key;
  return h;
}

fetch('/v1/models', {headers: headers()}).then(r => r.json()).then(j => {
  if (j.data) document.getElementById('model').textContent = j.data[0].id;
}).catch(() => {});

document.getElementById('clear').onclick = () => { history.length = 0; log.textContent = ''; };
document.getElementById('stop').onclick = () => { if (controller) controller.abort(); };

document.getElementById('form').onsubmit = async (event) => {
  event.preventDefault();
  const input = document.getElementById('prompt');
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = '';
  history.push({role: 'user', content: text});
  add('user', text);
  const messages = [];
  const system = document.getElementById('system').value.trim();
  if (system) messages.push({role: 'system', content: system});
  messages.push(...history);
  const box = add('assistant', '');
  const speed = document.createElement('div');
  speed.className = 'speed';
  let answer = '', chunks = 0, tokens = 0, first = 0, finish = '';
  controller = new AbortController();
  document.getElementById('stop').disabled = false;
  document.getElementById('send').disabled = true;
  try {
    const response = await fetch('/v1/chat/completions', {
      method: 'POST', headers: headers(), signal: controller.signal,
      body: JSON.stringify({messages, stream: true, stream_options: {include_usage: true},
                            temperature: parseFloat(document.getElementById('temperature').value),
                            max_tokens: parseInt(document.getElementById('max_tokens').value)})});
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || response.statusText);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith('data: ')) continue;
        const data = event.slice(6);
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) { tokens = chunk.usage.completion_tokens; continue; }
        const choice = chunk.choices[0];
        if (choice.delta.content) {
          if (!first) first = performance.now();
          chunks += 1;
          answer += choice.delta.content;
          box.textContent = answer;
          log.scrollTop = log.scrollHeight;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
  } catch (error) {
    if (error.name === 'AbortError') finish = 'stopped';
    else { box.classList.add('error'); box.textContent = answer + '\n[' + error.message + ']'; }
  }
  const seconds = first ? (performance.now() - first) / 1000 : 0;
  if (!tokens) tokens = chunks;  // stopped early: no usage chunk came
  // The first token's time is the start: the rate is the decoding speed this answer saw.
  speed.textContent = tokens + ' tokens' + (seconds > 0 ? ', ' + ((tokens - 1) / seconds).toFixed(1) + ' tokens/s' : '') +
                      (finish ? ', ' + finish : '');
  box.appendChild(speed);
  history.push({role: 'assistant', content: answer});
  controller = null;
  document.getElementById('stop').disabled = true;
  document.getElementById('send').disabled = false;
};

// A link can carry settings and a first message: /#temperature=0&system=...&ask=Hello (the
// fragment never reaches the server).
const settings = new URLSearchParams(location.hash.slice(1));
for (const name of ['system', 'temperature', 'max_tokens', 'key']) {
  if (settings.has(name)) document.getElementById(name).value = settings.get(name);
}
if (settings.has('ask')) {
  document.getElementById('prompt').value = settings.get('ask');
  document.getElementById('form').requestSubmit();
}
</script>
</body>
</html>
)page";

}  // namespace

std::string_view chat_page_html() { return kChatPage; }

}  // namespace hlwq::server
