// The continuous-batching scheduler on the tiny fixture models: its greedy tokens equal
// generate()'s for the same prompt whether a request runs alone or beside others that join and
// leave at different steps; seeded sampling does not depend on the company; cancelling frees the
// slot; a full queue refuses.
#include "server/batch_scheduler.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "core/error.h"
#include "engine/engine_fixture.h"
#include "engine/generate.h"

namespace hlwq::server {
namespace {

GenerationRequest request_for(std::vector<int32_t> prompt, int64_t max_new_tokens, SamplerOptions sampler = {}) {
  GenerationRequest request;
  request.prompt = std::move(prompt);
  request.max_new_tokens = max_new_tokens;
  request.sampler = sampler;
  return request;
}

// generate()'s tokens for the request, on a thread pool of its own (a pool runs one caller's work at
// a time, and the scheduler's thread is using the other).
std::vector<int32_t> generate_alone(const Model& model, const GenerationRequest& request, int64_t context) {
  ThreadPool pool(1);
  GenerateOptions options;
  options.max_new_tokens = request.max_new_tokens;
  options.context_length = context;
  options.sampler = request.sampler;
  options.stop_ids = request.stop_ids;
  return generate(model, request.prompt, options, pool).tokens;
}

struct Served {
  Served(const Model& model, ThreadPool& pool, int64_t context, int64_t slots)
      : backend(pool), runner(model, backend, RunnerOptions{context, slots, 0, 0, DType::F16, true}) {}
  CpuBackend backend;
  ModelRunner runner;
};

TEST(ServeScheduler, OneRequestGreedyEqualsGenerate) {
  ThreadPool pool(2);
  const Model model = Model::load(engine_fixture("llama"), pool);
  Served served(model, pool, 64, 1);
  BatchScheduler scheduler(served.runner, 4);
  const GenerationRequest request = request_for({1, 5, 9, 22, 7}, 20);
  const std::shared_ptr<Generation> generation = scheduler.submit(request);
  ASSERT_NE(generation, nullptr);
  const Generation::Progress result = generation->wait_for_end();
  EXPECT_EQ(result.end, GenerationEnd::length);
  EXPECT_EQ(result.tokens, generate_alone(model, request, 64));
  EXPECT_EQ(result.tokens.size(), 20u);
}

TEST(ServeScheduler, ConcurrentGreedyRequestsEachEqualGenerate) {
  ThreadPool pool(2);
  for (const char* fixture : {"llama", "qwen2"}) {
    const Model model = Model::load(engine_fixture(fixture), pool);
    const int64_t context = 48;
    Served served(model, pool, context, 3);
    BatchScheduler scheduler(served.runner, 16);
    // Different prompt lengths and answer lengths, more requests than slots: they join and leave
    // at different steps; one reaches the end of the context.
    std::vector<GenerationRequest> requests;
    for (int index = 0; index < 7; ++index) {
      std::vector<int32_t> prompt;
      for (int token = 0; token < 2 + 3 * index; ++token) prompt.push_back((17 * index + 5 * token + 3) % 150);
      requests.push_back(request_for(prompt, 4 + 5 * index));
    }
    requests.push_back(request_for(std::vector<int32_t>(40, 11), 30));  // 40 + 30 > 48: stops at the context
    std::vector<std::shared_ptr<Generation>> generations;
    for (const GenerationRequest& request : requests) {
      generations.push_back(scheduler.submit(request));
      ASSERT_NE(generations.back(), nullptr);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (size_t index = 0; index < requests.size(); ++index) {
      const Generation::Progress result = generations[index]->wait_for_end();
      EXPECT_EQ(result.end, GenerationEnd::length) << fixture << " request " << index;
      EXPECT_EQ(result.tokens, generate_alone(model, requests[index], context))
          << fixture << " request " << index;
    }
    EXPECT_EQ(generations.back()->wait_for_end().tokens.size(), 9u);  // positions 40..48
    const SchedulerCounts counts = scheduler.counts();
    EXPECT_EQ(counts.queued, 0);
    EXPECT_EQ(counts.active, 0);
    EXPECT_GT(counts.steps_total, 0);
  }
}

TEST(ServeScheduler, ChunkedPrefillEqualsWholePrompts) {
  // Prompts read 3 tokens a step beside other requests' decode give generate()'s greedy tokens; the
  // counts show every prompt went through in ceil(length / 3) chunks. The hybrid carries its
  // delta-net state from chunk to chunk.
  ThreadPool pool(2);
  const std::filesystem::path qwen35_text =
      std::filesystem::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "qwen35" / "text";
  for (const std::filesystem::path& fixture : {engine_fixture("llama"), qwen35_text}) {
    const Model model = Model::load(fixture, pool);
    const int64_t context = 64;
    Served served(model, pool, context, 2);
    BatchScheduler scheduler(served.runner, 8, 3);
    std::vector<GenerationRequest> requests;
    int64_t chunks = 0;
    for (const int length : {1, 7, 30, 3, 12}) {
      std::vector<int32_t> prompt;
      for (int token = 0; token < length; ++token) prompt.push_back((13 * length + 7 * token + 1) % 150);
      requests.push_back(request_for(prompt, 6));
      chunks += (length + 2) / 3;
    }
    std::vector<std::shared_ptr<Generation>> generations;
    for (const GenerationRequest& request : requests) generations.push_back(scheduler.submit(request));
    for (size_t index = 0; index < requests.size(); ++index) {
      ASSERT_NE(generations[index], nullptr);
      const Generation::Progress result = generations[index]->wait_for_end();
      EXPECT_EQ(result.end, GenerationEnd::length) << fixture << " request " << index;
      EXPECT_EQ(result.tokens, generate_alone(model, requests[index], context)) << fixture << " request " << index;
    }
    EXPECT_EQ(scheduler.counts().prefill_chunks_total, chunks) << fixture;
  }
}

TEST(ServeScheduler, NegativePrefillChunkIsRefused) {
  ThreadPool pool(1);
  const Model model = Model::load(engine_fixture("llama"), pool);
  Served served(model, pool, 16, 1);
  EXPECT_THROW(BatchScheduler(served.runner, 1, -1), Error);
}

TEST(ServeScheduler, StopIdEndsARequestWithoutEmittingIt) {
  ThreadPool pool(2);
  const Model model = Model::load(engine_fixture("llama"), pool);
  Served served(model, pool, 64, 2);
  BatchScheduler scheduler(served.runner, 4);
  GenerationRequest request = request_for({1, 2, 3}, 8);
  const std::vector<int32_t> free_run = generate_alone(model, request, 64);
  ASSERT_EQ(free_run.size(), 8u);
  request.stop_ids = {free_run[3]};
  const Generation::Progress result = scheduler.submit(request)->wait_for_end();
  EXPECT_EQ(result.end, GenerationEnd::stop_id);
  EXPECT_EQ(result.tokens, generate_alone(model, request, 64));
  EXPECT_LE(result.tokens.size(), 3u);
}

TEST(ServeScheduler, SeededSamplingDoesNotDependOnCompany) {
  ThreadPool pool(2);
  const Model model = Model::load(engine_fixture("llama"), pool);
  SamplerOptions sampler;
  sampler.temperature = 0.9f;
  sampler.top_p = 0.95f;
  sampler.seed = 1234;
  const GenerationRequest request = request_for({4, 8, 15, 16, 23, 42}, 24, sampler);
  Served alone_served(model, pool, 64, 1);
  std::vector<int32_t> alone;
  {
    BatchScheduler scheduler(alone_served.runner, 1);
    alone = scheduler.submit(request)->wait_for_end().tokens;
  }
  EXPECT_EQ(alone, generate_alone(model, request, 64));
  Served crowd_served(model, pool, 64, 4);
  BatchScheduler scheduler(crowd_served.runner, 8);
  std::vector<std::shared_ptr<Generation>> others;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    SamplerOptions other = sampler;
    other.seed = seed;
    others.push_back(scheduler.submit(request_for({7, 7, 7}, 30, other)));
  }
  EXPECT_EQ(scheduler.submit(request)->wait_for_end().tokens, alone);
}

TEST(ServeScheduler, CancelFreesTheSlot) {
  ThreadPool pool(2);
  const Model model = Model::load(engine_fixture("llama"), pool);
  Served served(model, pool, 128, 1);
  BatchScheduler scheduler(served.runner, 4);
  // The tiny model makes 120 tokens in milliseconds, so a cancel may come too late on a busy
  // machine: a few tries, of which one must end cancelled.
  bool cancelled_once = false;
  for (int attempt = 0; attempt < 5 && !cancelled_once; ++attempt) {
    const std::shared_ptr<Generation> long_one = scheduler.submit(request_for({1, 2}, 120));
    const std::shared_ptr<Generation> next = scheduler.submit(request_for({3, 4}, 5));
    ASSERT_NE(long_one, nullptr);
    ASSERT_NE(next, nullptr);
    // After the first token, cancel: the next request gets the one slot and completes.
    (void)long_one->wait(0, std::chrono::milliseconds(10000));
    long_one->cancel();
    const Generation::Progress ended = long_one->wait_for_end();
    if (ended.end == GenerationEnd::cancelled) {
      cancelled_once = true;
      EXPECT_LT(ended.tokens.size(), 120u);
    } else {
      EXPECT_EQ(ended.tokens.size(), 120u);
    }
    const Generation::Progress result = next->wait_for_end();
    EXPECT_EQ(result.end, GenerationEnd::length);
    EXPECT_EQ(result.tokens.size(), 5u);
  }
  EXPECT_TRUE(cancelled_once);
  // Cancelled while waiting in the queue: ends without a token.
  const std::shared_ptr<Generation> busy = scheduler.submit(request_for({1, 2}, 100));
  const std::shared_ptr<Generation> queued = scheduler.submit(request_for({5, 6}, 5));
  queued->cancel();
  EXPECT_EQ(busy->wait_for_end().tokens.size(), 100u);
  const Generation::Progress dropped = queued->wait_for_end();
  EXPECT_EQ(dropped.end, GenerationEnd::cancelled);
}

TEST(ServeScheduler, FullQueueRefusesAndShutDownFinishesTheRest) {
  ThreadPool pool(2);
  const Model model = Model::load(engine_fixture("llama"), pool);
  Served served(model, pool, 128, 1);
  std::shared_ptr<Generation> first, waiting;
  {
    BatchScheduler scheduler(served.runner, 1);
    first = scheduler.submit(request_for({1, 2}, 100));
    waiting = scheduler.submit(request_for({1, 3}, 10));
    ASSERT_NE(first, nullptr);
    ASSERT_NE(waiting, nullptr);
    // One slot busy or about to be, one request waiting: the next is refused.
    EXPECT_EQ(scheduler.submit(request_for({1, 4}, 10)), nullptr);
    scheduler.shut_down();
    EXPECT_EQ(scheduler.submit(request_for({1, 5}, 10)), nullptr);
  }  // the destructor drains
  EXPECT_EQ(first->wait_for_end().tokens.size(), 100u);
  EXPECT_EQ(waiting->wait_for_end().tokens.size(), 10u);
}

TEST(ServeScheduler, BadRequestsAreErrorsNotCrashes) {
  ThreadPool pool(1);
  const Model model = Model::load(engine_fixture("llama"), pool);
  Served served(model, pool, 16, 1);
  BatchScheduler scheduler(served.runner, 1);
  EXPECT_THROW(scheduler.submit(request_for({}, 4)), Error);
  EXPECT_THROW(scheduler.submit(request_for(std::vector<int32_t>(16, 1), 4)), Error);
  EXPECT_THROW(scheduler.submit(request_for({1}, 0)), Error);
  SamplerOptions bad;
  bad.top_p = 0;
  EXPECT_THROW(scheduler.submit(request_for({1}, 4, bad)), Error);
  // A token outside the vocabulary fails that request only.
  const Generation::Progress failed = scheduler.submit(request_for({1, 100000}, 4))->wait_for_end();
  EXPECT_EQ(failed.end, GenerationEnd::failed);
  EXPECT_EQ(scheduler.submit(request_for({1, 2}, 4))->wait_for_end().tokens.size(), 4u);
}

}  // namespace
}  // namespace hlwq::server
