// Tile kernels of scaled dot-product attention (flash-attention style), shared by the bindings in
// csrc/attention.cpp: the (B, H, T, D) kernels and the packed ones that read q, k, v straight from a
// (B, T, 3, H, D) projection and write (B, T, H, D). Every (T, D) matrix of a head is addressed
// through its row stride (`Rows`), so both layouts run the same code.
//
//   S = scale Q K^T + mask  (causal: -inf where key j > query i, PyTorch's top-left alignment)
//   P = softmax_rows(S),  out = P V,  lse_i = log sum_j exp(S_ij)
//   backward (P recomputed from lse, never stored):  dV = P^T dO,  dP = dO V^T,
//            dS = P (dP - rowsum(dO * out)),  dQ = scale dS K,  dK = scale dS^T Q
//
// The forward walks key tiles with an online softmax (running max m, sum l, rescaled output), so
// it keeps only out and lse; memory beyond the inputs is O(tile) per thread. Every product is one
// register-blocked kernel, C += A B, vectorized along B's contiguous rows; K and V tiles are
// transposed into a small buffer where a product needs K^T or V^T, and A's strides let P^T and
// dS^T be read in place.
#pragma once
#include "simd_math.h"  // first: sets fp-contract for the including file
#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace tinyml_attention {

constexpr int kBq = 64;  // query rows per tile
constexpr int kBk = 64;  // keys per tile

template <typename T> struct vec;
template <> struct vec<float> {
  typedef float type __attribute__((vector_size(64), aligned(4), may_alias));
  static constexpr int W = 16;
};
template <> struct vec<double> {
  typedef double type __attribute__((vector_size(64), aligned(8), may_alias));
  static constexpr int W = 8;
};

// C[M x N] (+)= A[M x K] B[K x N] with A[m][k] = A[m*sam + k*sak] (any strides: P^T, dS^T are read
// in place), B and C row-major with leading dims ldb, ldc. Tiles of 4 rows x 2 vectors live in
// registers across the whole k loop.
template <typename T>
TINYML_CLONES void gemm(int M, int N, int K, const T* __restrict A, int64_t sam, int64_t sak, const T* __restrict B,
                        int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate) {
  using V = typename vec<T>::type;
  constexpr int W = vec<T>::W;
  if (!accumulate)
    for (int m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, T(0));
  int m0 = 0;
  for (; m0 + 4 <= M; m0 += 4) {
    T* c0 = C + (m0 + 0) * ldc;
    T* c1 = C + (m0 + 1) * ldc;
    T* c2 = C + (m0 + 2) * ldc;
    T* c3 = C + (m0 + 3) * ldc;
    const T* a0 = A + (m0 + 0) * sam;
    const T* a1 = A + (m0 + 1) * sam;
    const T* a2 = A + (m0 + 2) * sam;
    const T* a3 = A + (m0 + 3) * sam;
    int n0 = 0;
    for (; n0 + 2 * W <= N; n0 += 2 * W) {
      V x00 = *(V*)(c0 + n0), x01 = *(V*)(c0 + n0 + W), x10 = *(V*)(c1 + n0), x11 = *(V*)(c1 + n0 + W);
      V x20 = *(V*)(c2 + n0), x21 = *(V*)(c2 + n0 + W), x30 = *(V*)(c3 + n0), x31 = *(V*)(c3 + n0 + W);
      for (int k = 0; k < K; ++k) {
        const T* b = B + k * ldb + n0;
        V b0 = *(const V*)b, b1 = *(const V*)(b + W);
        T s0 = a0[k * sak], s1 = a1[k * sak], s2 = a2[k * sak], s3 = a3[k * sak];
        x00 += s0 * b0; x01 += s0 * b1;
        x10 += s1 * b0; x11 += s1 * b1;
        x20 += s2 * b0; x21 += s2 * b1;
        x30 += s3 * b0; x31 += s3 * b1;
      }
      *(V*)(c0 + n0) = x00; *(V*)(c0 + n0 + W) = x01; *(V*)(c1 + n0) = x10; *(V*)(c1 + n0 + W) = x11;
      *(V*)(c2 + n0) = x20; *(V*)(c2 + n0 + W) = x21; *(V*)(c3 + n0) = x30; *(V*)(c3 + n0 + W) = x31;
    }
    for (; n0 + W <= N; n0 += W) {
      V x0 = *(V*)(c0 + n0), x1 = *(V*)(c1 + n0), x2 = *(V*)(c2 + n0), x3 = *(V*)(c3 + n0);
      for (int k = 0; k < K; ++k) {
        V b0 = *(const V*)(B + k * ldb + n0);
        x0 += a0[k * sak] * b0; x1 += a1[k * sak] * b0; x2 += a2[k * sak] * b0; x3 += a3[k * sak] * b0;
      }
      *(V*)(c0 + n0) = x0; *(V*)(c1 + n0) = x1; *(V*)(c2 + n0) = x2; *(V*)(c3 + n0) = x3;
    }
    if (n0 < N)
      for (int k = 0; k < K; ++k) {
        const T* b = B + k * ldb;
        T s0 = a0[k * sak], s1 = a1[k * sak], s2 = a2[k * sak], s3 = a3[k * sak];
        for (int n = n0; n < N; ++n) {
          c0[n] += s0 * b[n]; c1[n] += s1 * b[n]; c2[n] += s2 * b[n]; c3[n] += s3 * b[n];
        }
      }
  }
  for (; m0 < M; ++m0) {
    T* c = C + m0 * ldc;
    for (int k = 0; k < K; ++k) {
      T s = A[m0 * sam + k * sak];
      const T* b = B + k * ldb;
#pragma omp simd
      for (int n = 0; n < N; ++n) c[n] += s * b[n];
    }
  }
}

// dst[d][j] = src[j][d] for j < n (a key/value tile with row stride lds transposed, leading dim kBk).
template <typename T>
void transpose_tile(const T* src, int64_t lds, int n, int d, T* dst) {
  for (int j = 0; j < n; ++j)
    for (int c = 0; c < d; ++c) dst[c * kBk + j] = src[j * lds + c];
}

struct Mask {  // an additive mask broadcast to (B, H, Tq, Tk), addressed through element strides
  const void* data = nullptr;
  int64_t sb = 0, sh = 0, si = 0, sj = 0;
};

// Scores of one tile: S = scale * S + mask, -inf above the causal diagonal.
template <typename T>
TINYML_CLONES void finish_scores(T* __restrict s, int mq, int nk, int i0, int j0, T scale, bool causal,
                                 const T* mrow, int64_t si, int64_t sj) {
  for (int r = 0; r < mq; ++r) {
    T* sr = s + r * kBk;
    if (mrow) {
      const T* mr = mrow + (i0 + r) * si + j0 * sj;
      for (int j = 0; j < nk; ++j) sr[j] = sr[j] * scale + mr[j * sj];
    } else {
#pragma omp simd
      for (int j = 0; j < nk; ++j) sr[j] *= scale;
    }
    if (causal)
      for (int j = std::max(0, i0 + r - j0 + 1); j < nk; ++j) sr[j] = -INFINITY;
  }
}

// One online-softmax step for a tile row: returns the factor the row's running output must be
// scaled by; leaves exp(s - m_new) in s. The max skips NaN, but exp(NaN) makes l and the output NaN;
// scores so far all -inf or NaN take the branch below, which tells the two apart (m = NaN sticks).
template <typename T>
TINYML_CLONES T online_row(T* __restrict s, int nk, T& m, T& l) {
  T mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int j = 0; j < nk; ++j) mx = s[j] > mx ? s[j] : mx;
  T mnew = std::max(m, mx);
  if (mnew == -INFINITY) {
    if (std::any_of(s, s + nk, [](T v) { return v != v; })) {  // a NaN score (NaN query, key or mask): the row's output and lse are NaN, as PyTorch's
      m = l = T(NAN);
      std::fill(s, s + nk, T(NAN));
      return T(NAN);
    }
    // every key so far masked out: contributes nothing
#pragma omp simd
    for (int j = 0; j < nk; ++j) s[j] = 0;
    return T(1);
  }
  T alpha = m == -INFINITY ? T(0) : tinyml::vexp<T>(m - mnew);
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < nk; ++j) {
    T p = tinyml::vexp0<T>(s[j] - mnew);
    s[j] = p;
    sum += p;
  }
  l = l * alpha + sum;
  m = mnew;
  return alpha;
}

// Row strides (in elements) of the (T, D) matrices of one head: D for contiguous (B, H, T, D)
// arrays, 3 H D (q, k, v and their gradients) and H D (out, dout) in the packed (B, T, 3, H, D) layout.
struct Rows {
  int64_t q, k, v, o, g, dq, dk, dv;
};

template <typename T>
TINYML_CLONES void forward_tile(const T* q, const T* k, const T* v, T* out, T* lse, const T* mbase, const Mask& mk,
                                const Rows& ld, int tq, int tk, int d, int dv, int i0, T scale, bool causal,
                                T* work) {
  T* kt = work;                 // d x kBk
  T* s = kt + d * kBk;          // kBq x kBk
  T* acc = s + kBq * kBk;       // kBq x dv
  T* mrow = acc + kBq * dv;     // running max
  T* lrow = mrow + kBq;         // running sum
  int mq = std::min(kBq, tq - i0);
  std::fill(acc, acc + mq * dv, T(0));
  std::fill(mrow, mrow + mq, T(-INFINITY));
  std::fill(lrow, lrow + mq, T(0));
  // causal: the diagonal's key tile is read whole (as Triton reads blocks), so a NaN key or value
  // there reaches the tile's rows through 0 * NaN, as in the reference's full products
  int kend = causal ? std::min(tk, i0 + kBq) : tk;
  for (int j0 = 0; j0 < kend; j0 += kBk) {
    int nk = std::min(kBk, kend - j0);
    transpose_tile(k + j0 * ld.k, ld.k, nk, d, kt);
    gemm<T>(mq, nk, d, q + i0 * ld.q, ld.q, 1, kt, kBk, s, kBk, false);
    finish_scores<T>(s, mq, nk, i0, j0, scale, causal, mbase, mk.si, mk.sj);
    for (int r = 0; r < mq; ++r) {
      T alpha = online_row<T>(s + r * kBk, nk, mrow[r], lrow[r]);
      if (alpha != T(1))
        for (int c = 0; c < dv; ++c) acc[r * dv + c] *= alpha;
    }
    gemm<T>(mq, dv, nk, s, kBk, 1, v + j0 * ld.v, ld.v, acc, dv, true);
  }
  for (int r = 0; r < mq; ++r) {
    T l = lrow[r];
    // a row with every key masked (l = 0) gives 0, not NaN, as PyTorch; a NaN l stays NaN
    T inv = l == 0 ? T(0) : T(1) / l;
    for (int c = 0; c < dv; ++c) out[(i0 + r) * ld.o + c] = acc[r * dv + c] * inv;
    lse[i0 + r] = l == 0 ? T(-INFINITY) : mrow[r] + std::log(l);
  }
}

template <typename T>
TINYML_CLONES void backward_head(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout,
                                 const T* mbase, const Mask& mk, T* dq, T* dk, T* dv_out, const Rows& ld, int tq,
                                 int tk, int d, int dv, T scale, bool causal, T* work) {
  T* kt = work;                   // d x kBk
  T* vt = kt + d * kBk;           // dv x kBk
  T* p = vt + dv * kBk;           // kBq x kBk
  T* ds = p + kBq * kBk;          // kBq x kBk
  T* dk_acc = ds + kBq * kBk;     // kBk x d
  T* dv_acc = dk_acc + kBk * d;   // kBk x dv
  T* delta = dv_acc + kBk * dv;   // tq: rowsum(dO * O)
  for (int i = 0; i < tq; ++i) {
    T s = 0;
    for (int c = 0; c < dv; ++c) s += dout[i * ld.g + c] * o[i * ld.o + c];
    delta[i] = s;
    std::fill(dq + i * ld.dq, dq + i * ld.dq + d, T(0));
  }
  for (int j0 = 0; j0 < tk; j0 += kBk) {
    int nk = std::min(kBk, tk - j0);
    transpose_tile(k + j0 * ld.k, ld.k, nk, d, kt);
    transpose_tile(v + j0 * ld.v, ld.v, nk, dv, vt);
    std::fill(dk_acc, dk_acc + nk * d, T(0));
    std::fill(dv_acc, dv_acc + nk * dv, T(0));
    for (int i0 = causal ? j0 : 0; i0 < tq; i0 += kBq) {
      int mq = std::min(kBq, tq - i0);
      gemm<T>(mq, nk, d, q + i0 * ld.q, ld.q, 1, kt, kBk, p, kBk, false);
      finish_scores<T>(p, mq, nk, i0, j0, scale, causal, mbase, mk.si, mk.sj);
      for (int r = 0; r < mq; ++r) {
        T l = lse[i0 + r];
        T* pr = p + r * kBk;
        if (l == -INFINITY) {
          std::fill(pr, pr + nk, T(0));
          continue;
        }
#pragma omp simd
        for (int j = 0; j < nk; ++j) pr[j] = tinyml::vexp0<T>(pr[j] - l);
      }
      gemm<T>(nk, dv, mq, p, 1, kBk, dout + i0 * ld.g, ld.g, dv_acc, dv, true);  // dV += P^T dO
      gemm<T>(mq, nk, dv, dout + i0 * ld.g, ld.g, 1, vt, kBk, ds, kBk, false);   // dP = dO V^T
      for (int r = 0; r < mq; ++r) {
        T dl = delta[i0 + r];
        T* dr = ds + r * kBk;
        const T* pr = p + r * kBk;
#pragma omp simd
        for (int j = 0; j < nk; ++j) dr[j] = pr[j] * (dr[j] - dl) * scale;
        if (causal)  // a masked score is the constant -inf: its gradient is 0, not 0 * NaN when a row is NaN
          for (int j = std::max(0, i0 + r - j0 + 1); j < nk; ++j) dr[j] = 0;
      }
      gemm<T>(mq, d, nk, ds, kBk, 1, k + j0 * ld.k, ld.k, dq + i0 * ld.dq, ld.dq, true);  // dQ += dS K
      gemm<T>(nk, d, mq, ds, 1, kBk, q + i0 * ld.q, ld.q, dk_acc, d, true);               // dK += dS^T Q
    }
    for (int j = 0; j < nk; ++j) {
      std::copy(dk_acc + j * d, dk_acc + (j + 1) * d, dk + (j0 + j) * ld.dk);
      std::copy(dv_acc + j * dv, dv_acc + (j + 1) * dv, dv_out + (j0 + j) * ld.dv);
    }
  }
}

}  // namespace tinyml_attention
