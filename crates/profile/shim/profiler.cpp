// The two calls of libtorch's Kineto profiler that changedet needs, behind a C interface that
// never lets a C++ exception cross into Rust: start recording the CPU operators, and stop,
// handing every recorded operator to a callback.
#include <torch/csrc/autograd/profiler_kineto.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <set>

namespace {
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

const std::set<ActivityType> kCpuOnly{ActivityType::CPU};

void copy_message(const std::exception& e, char* error, size_t capacity) {
  if (capacity == 0) return;
  std::strncpy(error, e.what(), capacity - 1);
  error[capacity - 1] = '\0';
}
}  // namespace

extern "C" {
typedef void (*changedet_profiler_event)(void* context, const char* name, uint64_t thread, uint64_t start_ns,
                                         uint64_t end_ns);

int changedet_profiler_start(char* error, size_t capacity) {
  try {
    ProfilerConfig config(ProfilerState::KINETO);
    torch::autograd::profiler::prepareProfiler(config, kCpuOnly);
    torch::autograd::profiler::enableProfiler(config, kCpuOnly);
    return 0;
  } catch (const std::exception& e) {
    copy_message(e, error, capacity);
    return 1;
  }
}

int changedet_profiler_stop(changedet_profiler_event on_event, void* context, char* error, size_t capacity) {
  try {
    auto result = torch::autograd::profiler::disableProfiler();
    for (const auto& event : result->events()) {
      if (event.deviceType() != c10::DeviceType::CPU) continue;
      on_event(context, event.name().c_str(), event.startThreadId(), event.startNs(), event.endNs());
    }
    return 0;
  } catch (const std::exception& e) {
    copy_message(e, error, capacity);
    return 1;
  }
}
}
