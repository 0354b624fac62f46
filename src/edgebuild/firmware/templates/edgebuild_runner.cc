// edgebuild firmware runner: runs the model on the validation samples embedded in samples.cc and
// prints what it measured, one "EDGEBUILD_FW ..." line per fact (edgebuild parses them; the format
// is stable). The same file builds for the board (make) and for the host (make host).
//
//   EDGEBUILD_FW start board=<name> kernels=<k> arena_size=<bytes> samples=<K> inputs=<I> outputs=<O>
//   EDGEBUILD_FW calibration instructions=2000000 ticks=<T>        (board only)
//   EDGEBUILD_FW arena_used=<bytes>
//   EDGEBUILD_FW sample=<k> ticks=<T>                             (Invoke() of sample k)
//   EDGEBUILD_FW out sample=<k> index=<o> dtype=<t> offset=<n> values=<v...>
//   EDGEBUILD_FW op name=<OP> count=<n> ticks=<T>                 (sample 0 run again with a profiler)
//   EDGEBUILD_FW memory stack_used=<bytes> heap_used=<bytes>
//   EDGEBUILD_FW done status=0
// Failures print "EDGEBUILD_FW error kind=<kind> ..." and exit non-zero:
//   2 = AllocateTensors() failed (arena too small), 1 = model/ops, 5 = Invoke() failed, 6 = input size.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cstdint>

#include "model_data.h"
#include "model_ops.h"
#include "model_settings.h"
#include "platform.h"
#include "samples.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"

#if defined(TF_LITE_MCU_DEBUG_LOG)
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#endif

#ifndef EDGEBUILD_ARENA_BYTES
#define EDGEBUILD_ARENA_BYTES kTensorArenaSize
#endif
#ifndef EDGEBUILD_KERNELS
#if defined(CMSIS_NN)
#define EDGEBUILD_KERNELS "cmsis-nn"
#else
#define EDGEBUILD_KERNELS "reference"
#endif
#endif
#ifndef EDGEBUILD_MODEL_SYMBOL
#define EDGEBUILD_MODEL_SYMBOL g_model
#endif

namespace {

alignas(16) uint8_t g_edgebuild_arena[EDGEBUILD_ARENA_BYTES];

void Print(const char* fmt, ...) {
  char buf[256];
  va_list args;
  va_start(args, fmt);
  vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  platform_puts(buf);
}

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

// Per-op ticks, aggregated by op name, only while enabled (the timed runs leave it off).
class OpProfiler : public tflite::MicroProfilerInterface {
 public:
  bool enabled = false;
  uint32_t BeginEvent(const char* tag) override {
    if (!enabled || n_ >= kMax) return kMax;
    tags_[n_] = tag;
    start_[n_] = platform_ticks();
    return n_++;
  }
  void EndEvent(uint32_t h) override {
    if (h < kMax) end_[h] = platform_ticks();
  }
  void PrintSummary() const {
    const char* tags[kMax];
    uint64_t sums[kMax];
    int counts[kMax];
    int m = 0;
    for (uint32_t i = 0; i < n_; ++i) {
      int j = 0;
      while (j < m && strcmp(tags[j], tags_[i]) != 0) ++j;
      if (j == m) {
        tags[m] = tags_[i];
        sums[m] = 0;
        counts[m] = 0;
        ++m;
      }
      sums[j] += end_[i] - start_[i];
      counts[j]++;
    }
    for (int j = 0; j < m; ++j) {
      Print("EDGEBUILD_FW op name=%s count=%d ticks=%llu\n", tags[j], counts[j], U(sums[j]));
    }
  }

 private:
  static constexpr uint32_t kMax = 256;
  const char* tags_[kMax];
  uint64_t start_[kMax];
  uint64_t end_[kMax];
  uint32_t n_ = 0;
};

const char* TypeName(TfLiteType t) {
  switch (t) {
    case kTfLiteInt8: return "int8";
    case kTfLiteUInt8: return "uint8";
    case kTfLiteInt16: return "int16";
    case kTfLiteInt32: return "int32";
    case kTfLiteFloat32: return "float32";
    default: return "raw";
  }
}

size_t ElementSize(TfLiteType t) {
  switch (t) {
    case kTfLiteInt8:
    case kTfLiteUInt8: return 1;
    case kTfLiteInt16: return 2;
    case kTfLiteInt32:
    case kTfLiteFloat32: return 4;
    default: return 1;
  }
}

// One value as text: integers in decimal, float32 as the hex of its bits (exact).
int FormatValue(char* out, size_t n, const TfLiteTensor* t, size_t i) {
  switch (t->type) {
    case kTfLiteInt8: return snprintf(out, n, " %d", t->data.int8[i]);
    case kTfLiteUInt8: return snprintf(out, n, " %u", t->data.uint8[i]);
    case kTfLiteInt16: return snprintf(out, n, " %d", t->data.i16[i]);
    case kTfLiteInt32: return snprintf(out, n, " %ld", static_cast<long>(t->data.i32[i]));
    case kTfLiteFloat32: {
      uint32_t bits;
      memcpy(&bits, &t->data.f[i], 4);
      return snprintf(out, n, " 0x%08lx", static_cast<unsigned long>(bits));
    }
    default: return snprintf(out, n, " %u", t->data.uint8[i]);
  }
}

void PrintOutput(int sample, int index, const TfLiteTensor* t) {
  const size_t count = t->bytes / ElementSize(t->type);
  constexpr size_t kPerLine = 32;
  for (size_t start = 0; start < count || start == 0; start += kPerLine) {
    char line[512];
    int pos = snprintf(line, sizeof(line), "EDGEBUILD_FW out sample=%d index=%d dtype=%s offset=%u values=",
                       sample, index, TypeName(t->type), static_cast<unsigned>(start));
    for (size_t i = start; i < count && i < start + kPerLine; ++i) {
      pos += FormatValue(line + pos, sizeof(line) - pos, t, i);
    }
    snprintf(line + pos, sizeof(line) - pos, "\n");
    platform_puts(line);
    if (count == 0) break;
  }
}

#if defined(TF_LITE_MCU_DEBUG_LOG)
void DebugLogToConsole(const char* s) { platform_puts(s); }
#endif

int Fail(const char* kind, int status, const char* detail) {
  Print("EDGEBUILD_FW error kind=%s %s\n", kind, detail);
  Print("EDGEBUILD_FW done status=%d\n", status);
  return status;
}

}  // namespace

int main() {
  platform_stack_paint();
  platform_init();
#if defined(TF_LITE_MCU_DEBUG_LOG)
  RegisterDebugLogCallback(DebugLogToConsole);  // TFLM's MicroPrintf -> the console
#endif
  const tflite::Model* model = tflite::GetModel(EDGEBUILD_MODEL_SYMBOL);
  Print("EDGEBUILD_FW start board=%s kernels=%s arena_size=%u samples=%d inputs=%d\n", platform_name(),
        EDGEBUILD_KERNELS, static_cast<unsigned>(EDGEBUILD_ARENA_BYTES), kSampleCount, kSampleInputs);
#if defined(__arm__)
  {
    const uint32_t kCalInsns = 2000000;
    Print("EDGEBUILD_FW calibration instructions=%lu ticks=%llu\n", static_cast<unsigned long>(kCalInsns),
          U(platform_calibrate(kCalInsns)));
  }
#endif
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    char detail[96];
    snprintf(detail, sizeof(detail), "model_schema=%d expected=%d", static_cast<int>(model->version()),
             TFLITE_SCHEMA_VERSION);
    return Fail("schema", 1, detail);
  }
  static tflite::MicroMutableOpResolver<kNumberOperators> resolver;
  if (RegisterOps(resolver) != kTfLiteOk) return Fail("register_ops", 1, "RegisterOps() failed");

  static OpProfiler profiler;
#ifdef EDGEBUILD_HAS_RESOURCE_VARIABLES
  // A stateful model: its resource variables come from the same arena, as in the generated main.cc.
  static tflite::MicroAllocator* allocator = tflite::MicroAllocator::Create(g_edgebuild_arena, EDGEBUILD_ARENA_BYTES);
  if (allocator == nullptr) return Fail("allocate_tensors", 2, "MicroAllocator::Create failed");
  static tflite::MicroResourceVariables* variables =
      tflite::MicroResourceVariables::Create(allocator, kNumResourceVariables);
  static tflite::MicroInterpreter interpreter(model, resolver, allocator, variables, &profiler);
#else
  static tflite::MicroInterpreter interpreter(model, resolver, g_edgebuild_arena, EDGEBUILD_ARENA_BYTES,
                                              nullptr, &profiler);
#endif
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    char detail[96];
    snprintf(detail, sizeof(detail), "arena_size=%u", static_cast<unsigned>(EDGEBUILD_ARENA_BYTES));
    return Fail("allocate_tensors", 2, detail);
  }
  if (static_cast<int>(interpreter.inputs_size()) != kSampleInputs) {
    return Fail("inputs", 6, "the model's input count differs from samples.h");
  }
  for (int i = 0; i < kSampleInputs; ++i) {
    if (interpreter.input(i)->bytes != static_cast<size_t>(g_sample_input_bytes[i])) {
      char detail[96];
      snprintf(detail, sizeof(detail), "input=%d tensor_bytes=%u sample_bytes=%d", i,
               static_cast<unsigned>(interpreter.input(i)->bytes), g_sample_input_bytes[i]);
      return Fail("input_size", 6, detail);
    }
  }
  Print("EDGEBUILD_FW outputs=%u\n", static_cast<unsigned>(interpreter.outputs_size()));

  for (int k = 0; k < kSampleCount; ++k) {
    // Independent samples: zero variable tensors (a fused LSTM's state). Reset() zeroes resource variables
    // too, so a streaming model (state in resource variables) runs its samples in order, as LiteRT does.
#ifndef EDGEBUILD_HAS_RESOURCE_VARIABLES
    interpreter.Reset();
#endif
    for (int i = 0; i < kSampleInputs; ++i) {
      const size_t bytes = static_cast<size_t>(g_sample_input_bytes[i]);
      memcpy(interpreter.input(i)->data.raw, g_sample_inputs[i] + bytes * k, bytes);
    }
    const uint64_t t0 = platform_ticks();
    const TfLiteStatus status = interpreter.Invoke();
    const uint64_t ticks = platform_ticks() - t0;
    if (status != kTfLiteOk) {
      char detail[32];
      snprintf(detail, sizeof(detail), "sample=%d", k);
      return Fail("invoke", 5, detail);
    }
    Print("EDGEBUILD_FW sample=%d ticks=%llu\n", k, U(ticks));
    for (size_t o = 0; o < interpreter.outputs_size(); ++o) {
      PrintOutput(k, static_cast<int>(o), interpreter.output(o));
    }
  }
  Print("EDGEBUILD_FW arena_used=%u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));

  if (kSampleCount > 0) {  // per-op profile: sample 0 once more, with the profiler on
    for (int i = 0; i < kSampleInputs; ++i) {
      const size_t bytes = static_cast<size_t>(g_sample_input_bytes[i]);
      memcpy(interpreter.input(i)->data.raw, g_sample_inputs[i], bytes);
    }
    profiler.enabled = true;
    if (interpreter.Invoke() == kTfLiteOk) profiler.PrintSummary();
    profiler.enabled = false;
  }
  Print("EDGEBUILD_FW memory stack_used=%u heap_used=%u\n", static_cast<unsigned>(platform_stack_used()),
        static_cast<unsigned>(platform_heap_used()));
  Print("EDGEBUILD_FW done status=0\n");
  return 0;
}
