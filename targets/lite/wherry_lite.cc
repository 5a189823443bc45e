// wherry_lite: a small C interface over Paddle Lite's public light API
// (paddle::lite_api::CreatePaddlePredictor<MobileConfig>), loaded from Python with ctypes.
//
// Why C and ctypes instead of a Python extension: the library then depends on no Python headers
// or ABI, so one build serves every CPython on the board (3.9 ... 3.13), and it is built with
// nothing but the cross compiler and Lite's own public headers (paddle_api.h, paddle_place.h).
//
// Conventions: every function that can fail returns 0 on success and -1 on failure; the reason is
// then in wherry_lite_last_error() (per thread). C++ exceptions never cross this boundary.
// Lite is built with LITE_WITH_EXCEPTION, so its CHECK failures arrive here as exceptions
// instead of aborting the process (a real crash is still possible on a corrupt file: callers
// that must survive one run this library in a child process).
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "paddle_api.h"

#ifndef WHERRY_LITE_TAG
#define WHERRY_LITE_TAG "unknown"
#endif
#ifndef WHERRY_LITE_COMMIT
#define WHERRY_LITE_COMMIT "unknown"
#endif

#define WL_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using paddle::lite_api::MobileConfig;
using paddle::lite_api::PaddlePredictor;
using paddle::lite_api::PrecisionType;

thread_local std::string g_error;

struct Handle {
  std::shared_ptr<PaddlePredictor> predictor;
  std::vector<std::string> input_names;
  std::vector<std::string> output_names;
  std::string version;
};

int fail(const std::string& message) {
  g_error = message;
  return -1;
}

// Bytes per element of a Lite precision, or 0 when wherry does not exchange that type.
size_t element_size(int precision) {
  switch (static_cast<PrecisionType>(precision)) {
    case PrecisionType::kFloat: return 4;
    case PrecisionType::kInt32: return 4;
    case PrecisionType::kInt64: return 8;
    case PrecisionType::kFP64: return 8;
    case PrecisionType::kInt16: return 2;
    case PrecisionType::kFP16: return 2;
    case PrecisionType::kInt8: return 1;
    case PrecisionType::kUInt8: return 1;
    case PrecisionType::kBool: return 1;
    default: return 0;
  }
}

// Input buffers are allocated with the element type the feed carries.
void* mutable_input(paddle::lite_api::Tensor* tensor, int precision) {
  switch (static_cast<PrecisionType>(precision)) {
    case PrecisionType::kFloat: return tensor->mutable_data<float>();
    case PrecisionType::kInt32: return tensor->mutable_data<int32_t>();
    case PrecisionType::kInt64: return tensor->mutable_data<int64_t>();
    case PrecisionType::kFP64: return tensor->mutable_data<double>();
    case PrecisionType::kInt16: return tensor->mutable_data<int16_t>();
    case PrecisionType::kInt8: return tensor->mutable_data<int8_t>();
    case PrecisionType::kUInt8: return tensor->mutable_data<uint8_t>();
    case PrecisionType::kBool: return tensor->mutable_data<bool>();
    default: return nullptr;
  }
}

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

// Version of the Lite source this library was built from (e.g. "v2.13-rc") and its commit.
WL_EXPORT const char* wherry_lite_version() { return WHERRY_LITE_TAG; }
WL_EXPORT const char* wherry_lite_commit() { return WHERRY_LITE_COMMIT; }
WL_EXPORT const char* wherry_lite_last_error() { return g_error.c_str(); }

// Load a .nb model. Returns a handle, or NULL (reason in wherry_lite_last_error()).
WL_EXPORT void* wherry_lite_create(const char* model_file, int threads) {
  try {
    MobileConfig config;
    config.set_model_from_file(model_file);
    if (threads > 0) config.set_threads(threads);
    std::unique_ptr<Handle> handle(new Handle());
    handle->predictor = paddle::lite_api::CreatePaddlePredictor<MobileConfig>(config);
    if (!handle->predictor) {
      fail(std::string("Paddle Lite returned no predictor for ") + model_file);
      return nullptr;
    }
    handle->input_names = handle->predictor->GetInputNames();
    handle->output_names = handle->predictor->GetOutputNames();
    handle->version = handle->predictor->GetVersion();
    return handle.release();
  } catch (const std::exception& exc) {
    fail(exc.what());
  } catch (...) {
    fail("Paddle Lite raised an unknown C++ exception while loading the model");
  }
  return nullptr;
}

WL_EXPORT void wherry_lite_destroy(void* handle) { delete static_cast<Handle*>(handle); }

// Version string the loaded predictor reports (GetVersion()).
WL_EXPORT const char* wherry_lite_predictor_version(void* handle) {
  return static_cast<Handle*>(handle)->version.c_str();
}

WL_EXPORT int wherry_lite_input_count(void* handle) {
  return static_cast<int>(static_cast<Handle*>(handle)->input_names.size());
}

WL_EXPORT int wherry_lite_output_count(void* handle) {
  return static_cast<int>(static_cast<Handle*>(handle)->output_names.size());
}

WL_EXPORT const char* wherry_lite_input_name(void* handle, int index) {
  auto* h = static_cast<Handle*>(handle);
  if (index < 0 || index >= static_cast<int>(h->input_names.size())) return nullptr;
  return h->input_names[index].c_str();
}

WL_EXPORT const char* wherry_lite_output_name(void* handle, int index) {
  auto* h = static_cast<Handle*>(handle);
  if (index < 0 || index >= static_cast<int>(h->output_names.size())) return nullptr;
  return h->output_names[index].c_str();
}

// Copy `nbytes` of C-contiguous data of Lite precision `precision` and shape `shape[ndim]` into input `index`.
WL_EXPORT int wherry_lite_set_input(void* handle, int index, int precision, const int64_t* shape, int ndim,
                                    const void* data, size_t nbytes) {
  try {
    auto* h = static_cast<Handle*>(handle);
    if (index < 0 || index >= static_cast<int>(h->input_names.size())) return fail("input index out of range");
    std::vector<int64_t> dims(shape, shape + ndim);
    size_t size = element_size(precision);
    if (size == 0) return fail("unsupported input element type " + std::to_string(precision));
    if (static_cast<size_t>(element_count(dims)) * size != nbytes) return fail("input byte count does not match its shape");
    std::unique_ptr<paddle::lite_api::Tensor> tensor = h->predictor->GetInput(index);
    tensor->Resize(dims);
    void* dst = mutable_input(tensor.get(), precision);
    if (dst == nullptr && nbytes > 0) return fail("Paddle Lite allocated no buffer for input " + h->input_names[index]);
    if (nbytes > 0) std::memcpy(dst, data, nbytes);
    return 0;
  } catch (const std::exception& exc) {
    return fail(exc.what());
  } catch (...) {
    return fail("Paddle Lite raised an unknown C++ exception while setting an input");
  }
}

// Sequence (LoD) input: give input `index` the LoD `offsets` (Paddle's level offsets, e.g. lengths
// [4, 5] -> [0, 4, 9]), `levels` levels whose sizes are `level_sizes[levels]`, concatenated in
// `offsets`. Called after wherry_lite_set_input, before every run (each run feeds new sequences).
WL_EXPORT int wherry_lite_set_input_lod(void* handle, int index, const uint64_t* offsets, const size_t* level_sizes,
                                        int levels) {
  try {
    auto* h = static_cast<Handle*>(handle);
    if (index < 0 || index >= static_cast<int>(h->input_names.size())) return fail("input index out of range");
    if (levels < 0) return fail("negative LoD level count");
    paddle::lite_api::lod_t lod;
    for (int level = 0; level < levels; ++level) {
      lod.emplace_back(offsets, offsets + level_sizes[level]);
      offsets += level_sizes[level];
    }
    h->predictor->GetInput(index)->SetLoD(lod);
    return 0;
  } catch (const std::exception& exc) {
    return fail(exc.what());
  } catch (...) {
    return fail("Paddle Lite raised an unknown C++ exception while setting an input's LoD");
  }
}

WL_EXPORT int wherry_lite_run(void* handle) {
  try {
    static_cast<Handle*>(handle)->predictor->Run();
    return 0;
  } catch (const std::exception& exc) {
    return fail(exc.what());
  } catch (...) {
    return fail("Paddle Lite raised an unknown C++ exception while running the model");
  }
}

// Describe output `index`: its Lite precision and shape (up to `max_ndim` dims; *ndim gets the real rank).
WL_EXPORT int wherry_lite_output_info(void* handle, int index, int* precision, int64_t* shape, int max_ndim,
                                      int* ndim) {
  try {
    auto* h = static_cast<Handle*>(handle);
    if (index < 0 || index >= static_cast<int>(h->output_names.size())) return fail("output index out of range");
    std::unique_ptr<const paddle::lite_api::Tensor> tensor = h->predictor->GetOutput(index);
    std::vector<int64_t> dims = tensor->shape();
    *precision = static_cast<int>(tensor->precision());
    *ndim = static_cast<int>(dims.size());
    for (int i = 0; i < *ndim && i < max_ndim; ++i) shape[i] = dims[i];
    return 0;
  } catch (const std::exception& exc) {
    return fail(exc.what());
  } catch (...) {
    return fail("Paddle Lite raised an unknown C++ exception while reading an output");
  }
}

// Copy output `index` (exactly `nbytes` bytes, as computed from wherry_lite_output_info) into `dst`.
WL_EXPORT int wherry_lite_output_copy(void* handle, int index, void* dst, size_t nbytes) {
  try {
    auto* h = static_cast<Handle*>(handle);
    if (index < 0 || index >= static_cast<int>(h->output_names.size())) return fail("output index out of range");
    std::unique_ptr<const paddle::lite_api::Tensor> tensor = h->predictor->GetOutput(index);
    size_t size = element_size(static_cast<int>(tensor->precision()));
    if (size == 0) return fail("unsupported output element type " + std::to_string(static_cast<int>(tensor->precision())));
    if (static_cast<size_t>(element_count(tensor->shape())) * size != nbytes) return fail("output byte count does not match its shape");
    if (nbytes > 0) std::memcpy(dst, tensor->data<void>(), nbytes);
    return 0;
  } catch (const std::exception& exc) {
    return fail(exc.what());
  } catch (...) {
    return fail("Paddle Lite raised an unknown C++ exception while copying an output");
  }
}

// LoD of output `index` (sequence outputs, e.g. a CRF's decoded path): *levels gets the number of
// levels and level_sizes[l] the size of level l (up to `max_levels`); the offsets of all levels are
// written one after another into `offsets` (up to `max_offsets`). Call with max_offsets == 0 to size.
WL_EXPORT int wherry_lite_output_lod(void* handle, int index, uint64_t* offsets, size_t max_offsets,
                                     size_t* level_sizes, int max_levels, int* levels) {
  try {
    auto* h = static_cast<Handle*>(handle);
    if (index < 0 || index >= static_cast<int>(h->output_names.size())) return fail("output index out of range");
    std::unique_ptr<const paddle::lite_api::Tensor> tensor = h->predictor->GetOutput(index);
    paddle::lite_api::lod_t lod = tensor->lod();
    *levels = static_cast<int>(lod.size());
    size_t written = 0;
    for (size_t level = 0; level < lod.size(); ++level) {
      if (static_cast<int>(level) < max_levels) level_sizes[level] = lod[level].size();
      for (uint64_t offset : lod[level]) {
        if (written < max_offsets) offsets[written] = offset;
        ++written;
      }
    }
    return 0;
  } catch (const std::exception& exc) {
    return fail(exc.what());
  } catch (...) {
    return fail("Paddle Lite raised an unknown C++ exception while reading an output's LoD");
  }
}
