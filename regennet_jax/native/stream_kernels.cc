// A stream's one-token kernels: few-row matrix products and attention over the key/value cache.
//
// Few-row matrix products y[M, N] = x[M, K] . W[K, N] (M of 1-8) for one-token inference.
//
// A stream denoises one token per step: every product of its decoder is a matrix-vector product
// that reads the whole kernel once, so the time is the kernels' bytes over the memory bandwidth.
// XLA:CPU runs each such product on one thread at 15-24 GB/s; this one splits W's columns over a
// small pool of threads that spin between products (a stream issues some 200 a frame, too many
// for a sleeping thread's wake-up), and reads W as float32 or as bfloat16 (the top half of a
// float32: a shift widens it exactly; activations and sums stay float32).
//
// Handlers, registered from regennet_jax/native/__init__.py:
//   RegennetFewRows(x f32[M, K], w f32|bf16[K, N]) -> y f32[M, N]
//   RegennetOneTokenAttention(query f32[B, H, Dh], keys, values f32[S, B, H, T, Dh], step s32[],
//                             frame s32[]; bf16_operands) -> f32[B, H, Dh]
// and RegennetFewRowsSetThreads(int) sets the pool's size (threads including the caller's).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    !defined(REGENNET_PORTABLE)
#define REGENNET_AVX512 1
#include <immintrin.h>
#endif

namespace ffi = xla::ffi;

namespace {

struct Product {
  const float* x;
  const void* w;
  float* y;
  int64_t m, k, n;
  bool bf16;
};

inline float WidenBf16(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

#if REGENNET_AVX512
// Sixteen columns of row `row` of W from column `col`, the lanes outside `mask` zero.
template <bool BF16>
inline __m512 LoadW(const Product& p, int64_t row, int64_t col, __mmask16 mask) {
  if (BF16) {
    const uint16_t* w = static_cast<const uint16_t*>(p.w) + row * p.n + col;
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, w));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(p.w) + row * p.n + col);
}

// out[r, :] += x[m0 + r, k0:k1] . W[k0:k1, :] for r < MR, out's rows N apart. W is read front to
// back, R rows at a time (R contiguous streams for the prefetchers), while out's rows stay in L1.
template <int MR, int R, bool BF16>
void SlabRows(const Product& p, int64_t m0, int64_t k0, int64_t k1, float* out) {
  const int64_t n = p.n;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n % 16 ? n % 16 : 16)) - 1);
  int64_t k = k0;
  for (; k + R <= k1; k += R) {
    __m512 xs[MR][R];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < R; ++j) xs[r][j] = _mm512_set1_ps(p.x[(m0 + r) * p.k + k + j]);
    for (int64_t c = 0; c < n; c += 16) {
      const __mmask16 mask = c + 16 <= n ? static_cast<__mmask16>(0xFFFF) : tail;
      __m512 w[R];
      for (int j = 0; j < R; ++j) w[j] = LoadW<BF16>(p, k + j, c, mask);
      for (int r = 0; r < MR; ++r) {
        __m512 acc = _mm512_maskz_loadu_ps(mask, out + r * n + c);
        for (int j = 0; j < R; ++j) acc = _mm512_fmadd_ps(xs[r][j], w[j], acc);
        _mm512_mask_storeu_ps(out + r * n + c, mask, acc);
      }
    }
  }
  if (k < k1) {
    for (; k < k1; ++k) SlabRows<MR, 1, BF16>(p, m0, k, k + 1, out);
  }
}

template <bool BF16>
void SlabOf(const Product& p, int64_t k0, int64_t k1, float* out) {
  int64_t m0 = 0;
  for (; m0 + 4 <= p.m; m0 += 4) SlabRows<4, 4, BF16>(p, m0, k0, k1, out + m0 * p.n);
  switch (p.m - m0) {
    case 3: SlabRows<3, 4, BF16>(p, m0, k0, k1, out + m0 * p.n); break;
    case 2: SlabRows<2, 4, BF16>(p, m0, k0, k1, out + m0 * p.n); break;
    case 1: SlabRows<1, 4, BF16>(p, m0, k0, k1, out + m0 * p.n); break;
    default: break;
  }
}

void AddSlab(const Product& p, int64_t k0, int64_t k1, float* out) {
  if (p.bf16) {
    SlabOf<true>(p, k0, k1, out);
  } else {
    SlabOf<false>(p, k0, k1, out);
  }
}
#else
// Portable: the compiler vectorises the inner loop for whatever the machine has.
void AddSlab(const Product& p, int64_t k0, int64_t k1, float* out) {
  for (int64_t r = 0; r < p.m; ++r) {
    float* y = out + r * p.n;
    for (int64_t k = k0; k < k1; ++k) {
      const float a = p.x[r * p.k + k];
      if (p.bf16) {
        const uint16_t* w = static_cast<const uint16_t*>(p.w) + k * p.n;
        for (int64_t c = 0; c < p.n; ++c) y[c] += a * WidenBf16(w[c]);
      } else {
        const float* w = static_cast<const float*>(p.w) + k * p.n;
        for (int64_t c = 0; c < p.n; ++c) y[c] += a * w[c];
      }
    }
  }
}
#endif

// out[M, N] = x[:, k0:k1] . W[k0:k1, :].
void Slab(const Product& p, int64_t k0, int64_t k1, float* out) {
  std::fill(out, out + p.m * p.n, 0.0f);
  AddSlab(p, k0, k1, out);
}

inline void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Threads that split each product's columns with the caller. They spin for a while after each
// product (the next one of a step follows within microseconds), then sleep until the next.
class Pool {
 public:
  ~Pool() { Resize(1); }

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void Resize(int threads) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      generation_.fetch_add(1);
      cv_.notify_all();
    }
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    // Each worker starts from the generation as of now: the next product is the first it runs.
    const uint64_t now = generation_.load();
    for (int i = 1; i < std::max(threads, 1); ++i) {
      workers_.emplace_back([this, i, now] { Work(i, now); });
    }
  }

  // Runs `p` over every thread of the pool: each takes a contiguous share of W's rows (of K) and
  // sums into its own buffer; the caller takes the first share, into y, and adds the others'.
  void Run(const Product& p) {
    const int threads = this->threads();
    product_ = p;
    share_ = ((p.k + threads - 1) / threads + 3) / 4 * 4;
    partials_.resize(threads);
    for (auto& partial : partials_) partial.resize(p.m * p.n);
    pending_.store(threads - 1);
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
    Slab(p, 0, std::min<int64_t>(share_, p.k), p.y);
    for (int spins = 1; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      Pause();
      if (spins % 16 == 0) std::this_thread::yield();  // a descheduled worker may need this core
    }
    for (int t = 1; t < threads && t * share_ < p.k; ++t) {
      const float* partial = partials_[t].data();
      for (int64_t i = 0; i < p.m * p.n; ++i) p.y[i] += partial[i];
    }
  }

 private:
  void Work(int index, uint64_t seen) {
    for (;;) {
      auto start = std::chrono::steady_clock::now();
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen) {
        Pause();
        // Between products, give the core to any other thread that wants it (XLA's own pool):
        // pure spinning there stalls both for whole scheduler time slices.
        if (++spins % 16 == 0) std::this_thread::yield();
        if (spins % 1024 == 0 &&
            std::chrono::steady_clock::now() - start > std::chrono::milliseconds(5)) {
          std::unique_lock<std::mutex> lock(mu_);
          sleepers_.fetch_add(1);
          cv_.wait(lock, [&] { return generation_.load() != seen; });
          sleepers_.fetch_sub(1);
        }
      }
      seen = generation_.load();
      if (stop_) return;
      const Product p = product_;
      const int64_t begin = std::min<int64_t>(index * share_, p.k);
      const int64_t end = std::min<int64_t>(begin + share_, p.k);
      if (begin < end) Slab(p, begin, end, partials_[index].data());
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  Product product_{};
  int64_t share_ = 0;
  std::vector<std::vector<float>> partials_;  // [threads][M * N]
};

Pool& ThePool() {
  static Pool* pool = new Pool();  // never destroyed: no joins at interpreter exit
  return *pool;
}
std::mutex pool_in_use;

// Below this many multiply-adds a product is not worth waking another thread for.
constexpr int64_t kThreadedWork = 1 << 16;

ffi::Error FewRows(ffi::Buffer<ffi::F32> x, ffi::AnyBuffer w, ffi::ResultBuffer<ffi::F32> y) {
  auto xd = x.dimensions();
  auto wd = w.dimensions();
  if (xd.size() != 2 || wd.size() != 2 || xd[1] != wd[0]) {
    return ffi::Error::InvalidArgument("RegennetFewRows: expected x [M, K] and w [K, N]");
  }
  const bool bf16 = w.element_type() == ffi::DataType::BF16;
  if (!bf16 && w.element_type() != ffi::DataType::F32) {
    return ffi::Error::InvalidArgument("RegennetFewRows: w must be float32 or bfloat16");
  }
  Product p{x.typed_data(), w.untyped_data(), y->typed_data(), xd[0], xd[1], wd[1], bf16};
  if (p.m == 0 || p.n == 0) return ffi::Error::Success();
  // XLA may run independent products at once (a layer's query, key and value): whichever does
  // not get the pool computes on its own thread.
  std::unique_lock<std::mutex> lock(pool_in_use, std::try_to_lock);
  if (lock.owns_lock() && ThePool().threads() > 1 && p.k * p.n >= kThreadedWork) {
    ThePool().Run(p);
  } else {
    Slab(p, 0, p.k, p.y);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RegennetFewRows, FewRows,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

extern "C" void RegennetFewRowsSetThreads(int threads) {
  std::lock_guard<std::mutex> lock(pool_in_use);
  ThePool().Resize(threads);
}

extern "C" int RegennetFewRowsThreads() { return ThePool().threads(); }

extern "C" int RegennetFewRowsVectorised() {
#if REGENNET_AVX512
  return 1;
#else
  return 0;
#endif
}

// One new token's attention over a stream's key/value cache, read in place.
//
// The caches hold every denoising step's keys and values, [S, B, H, T, Dh]. XLA can only hand the
// step's [B, H, T, Dh] slice to its products after copying it out (at T = 300, some 7 ms of a
// 5-step frame at paper size); this reads the slice where it lies, and only the frames seen so
// far (t <= frame), which the masked products read all of.
namespace {

inline float RoundToBf16(float v) {  // round to nearest even, as a float32 -> bfloat16 cast
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits += 0x7FFF + ((bits >> 16) & 1);
  bits &= 0xFFFF0000u;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// sum_d q[d] * k[d], k rounded to bfloat16 first when asked (q already is).
inline float Dot(const float* q, const float* k, int64_t dim, bool bf16_operands) {
  int64_t d = 0;
  float sum = 0.0f;
#if REGENNET_AVX512
  if (!bf16_operands) {
    __m512 acc = _mm512_setzero_ps();
    for (; d + 16 <= dim; d += 16) {
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(k + d), acc);
    }
    sum = _mm512_reduce_add_ps(acc);
  }
#endif
  for (; d < dim; ++d) sum += q[d] * (bf16_operands ? RoundToBf16(k[d]) : k[d]);
  return sum;
}

ffi::Error OneTokenAttention(ffi::Buffer<ffi::F32> query, ffi::Buffer<ffi::F32> keys,
                             ffi::Buffer<ffi::F32> values, ffi::Buffer<ffi::S32> step,
                             ffi::Buffer<ffi::S32> frame, ffi::ResultBuffer<ffi::F32> out,
                             bool bf16_operands) {
  auto qd = query.dimensions();
  auto kd = keys.dimensions();
  auto vd = values.dimensions();
  if (qd.size() != 3 || kd.size() != 5 || vd.size() != 5 || kd[1] != qd[0] || kd[2] != qd[1] ||
      kd[4] != qd[2] || !std::equal(kd.begin(), kd.end(), vd.begin())) {
    return ffi::Error::InvalidArgument(
        "RegennetOneTokenAttention: expected query [B, H, Dh] and caches [S, B, H, T, Dh]");
  }
  const int64_t batch = qd[0], heads = qd[1], dim = qd[2], length = kd[3];
  const int64_t s = step.typed_data()[0], f = frame.typed_data()[0];
  if (s < 0 || s >= kd[0] || f < 0 || f >= length) {
    return ffi::Error::InvalidArgument("RegennetOneTokenAttention: step or frame out of range");
  }
  const float root = std::sqrt(static_cast<float>(dim));
  std::vector<float> scores(f + 1), q(dim), acc(dim);
  for (int64_t bh = 0; bh < batch * heads; ++bh) {
    const float* k = keys.typed_data() + ((s * batch * heads + bh) * length) * dim;
    const float* v = values.typed_data() + ((s * batch * heads + bh) * length) * dim;
    const float* query_row = query.typed_data() + bh * dim;
    // As the model: the query divided by sqrt(Dh) first; with bfloat16 operands every product's
    // operands are rounded to bfloat16 and the sums stay float32.
    for (int64_t d = 0; d < dim; ++d) {
      q[d] = query_row[d] / root;
      if (bf16_operands) q[d] = RoundToBf16(q[d]);
    }
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t <= f; ++t) {
      scores[t] = Dot(q.data(), k + t * dim, dim, bf16_operands);
      top = std::max(top, scores[t]);
    }
    float total = 0.0f;
    for (int64_t t = 0; t <= f; ++t) total += (scores[t] = std::exp(scores[t] - top));
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t t = 0; t <= f; ++t) {
      float w = scores[t] / total;
      const float* vt = v + t * dim;
      if (bf16_operands) {
        w = RoundToBf16(w);
        for (int64_t d = 0; d < dim; ++d) acc[d] += w * RoundToBf16(vt[d]);
      } else {
        for (int64_t d = 0; d < dim; ++d) acc[d] += w * vt[d];
      }
    }
    std::copy(acc.begin(), acc.end(), out->typed_data() + bh * dim);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RegennetOneTokenAttention, OneTokenAttention,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("bf16_operands"));
