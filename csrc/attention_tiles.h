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
// The forward keeps one query tile's scores transposed, S^T (keys x queries): the Q tile is
// transposed once, S^T = K Q^T reads K rows in place (the same products in the same order as the
// backward's Q K^T, so both see equal scores), and the online softmax (running max
// m, sum l, rescaled output) runs down the columns, one query per vector lane, with no horizontal
// reductions; out += P V reads P^T in place. It keeps only out and lse: memory beyond the inputs is
// O(tile) per thread. The backward walks key tiles (transposing K and V once per tile) and, for
// each, the query tiles that see them, in the S layout (queries x keys). Every product is the
// register-blocked gemm of csrc/attention_gemm.h.
//
// Causal: key tiles above the diagonal are skipped, and in a tile on the diagonal each block of 4
// rows computes only up to the diagonal (gemm's `need`). The full products the reference computes
// (and PyTorch's math attention) also add 0 * x for each masked pair, which is NaN where x is inf
// or NaN. The skipped terms are put back by rule, after a one-pass check that finds no inf or NaN
// in the common case (`causal_nan_*`): out[i][c] is NaN if some V[j][c], j > i, is not finite;
// dV[j][c] if some dO[i][c] is, or lse_i is NaN (a NaN row's P is NaN at its masked keys too),
// i < j; dQ[i][c] if some K[j][c], j > i; dK[j][c] if some Q[i][c], i < j.
#pragma once
#include "attention_gemm.h"  // first: sets fp-contract for the including file

namespace tinyml_attention {

constexpr int kBq = 64;  // query rows per tile
constexpr int kBk = 64;  // keys per tile (kBq == kBk: a diagonal tile starts where its query tile does)

struct Mask {  // an additive mask broadcast to (B, H, Tq, Tk), addressed through element strides
  const void* data = nullptr;
  int64_t sb = 0, sh = 0, si = 0, sj = 0;
};

// Row strides (in elements) of the (T, D) matrices of one head: D for contiguous (B, H, T, D)
// arrays, 3 H D (q, k, v and their gradients) and H D (out, dout) in the packed (B, T, 3, H, D) layout.
struct Rows {
  int64_t q, k, v, o, g, dq, dk, dv;
};

// Scratch sizes (elements of T, and ints) of one thread.
inline size_t forward_work(int d, int dv) { return size_t(d) * kBq + kBk * kBq + kBq * size_t(dv) + 3 * kBq; }
inline size_t backward_work(int d, int dv, int tq) {
  return size_t(d + dv) * kBk + 2 * kBq * kBk + kBk * size_t(d + dv) + size_t(tq);
}
inline size_t int_work(int d, int dv) { return size_t(std::max(d, dv)); }

// One online-softmax step over a transposed score tile st (nk keys x mp queries, row stride kBq):
// scales the scores, masks the causal entries (query i0+i < key j0+j) of a diagonal tile, updates the running max m
// and sum l of every query, leaves exp(s - m) in st and the factor each query's output must be
// scaled by in alpha. The max skips NaN, exp(NaN) then makes l and the output NaN; a query whose
// scores so far are all -inf (masked) or NaN subtracts 0 instead of -inf, so masked keys give 0.
template <typename T>
TINYML_CLONES void softmax_step(T* __restrict st, int nk, int mp, int i0, int j0, bool diag, T scale,
                                T* __restrict m, T* __restrict l, T* __restrict alpha) {
  constexpr int W = vec<T>::W;
  for (int b = 0; b < mp; b += W) {  // W queries at a time, their max and sum held in registers
    T mx[W], sh[W], sum[W];
#pragma omp simd
    for (int i = 0; i < W; ++i) mx[i] = m[b + i];
    for (int j = 0; j < nk; ++j) {
      T* row = st + j * kBq + b;
      const int masked = diag ? j0 + j - i0 - b : 0;  // lanes i < masked: query b+i < key j0+j
#pragma omp simd
      for (int i = 0; i < W; ++i) {
        const T x = i < masked ? T(-INFINITY) : row[i] * scale;
        row[i] = x;
        mx[i] = x > mx[i] ? x : mx[i];
      }
    }
#pragma omp simd
    for (int i = 0; i < W; ++i) {
      sh[i] = mx[i] == -INFINITY ? T(0) : mx[i];
      alpha[b + i] = tinyml::vexp0<T>(m[b + i] - sh[i]);  // 0 while m = -inf, exactly 1 while m does not move
      m[b + i] = mx[i];
      sum[i] = 0;
    }
    for (int j = 0; j < nk; ++j) {
      T* row = st + j * kBq + b;
#pragma omp simd
      for (int i = 0; i < W; ++i) {
        const T p = tinyml::vexp0<T>(row[i] - sh[i]);
        row[i] = p;
        sum[i] += p;
      }
    }
#pragma omp simd
    for (int i = 0; i < W; ++i) l[b + i] = l[b + i] * alpha[b + i] + sum[i];
  }
}

// out[i][c] = NaN where a masked key j > i (j < tk) has a non-finite V[j][c] (see the header); run
// when the bindings' check (any_nonfinite, once per head) found one.
template <typename T>
void causal_nan_forward(const T* v, T* out, const Rows& ld, int tk, int dv, int i0, int mq, int* at) {
  nonfinite_rows(v, ld.v, tk, dv, false, at);
  for (int i = 0; i < mq; ++i)
    for (int c = 0; c < dv; ++c)
      if (at[c] > i0 + i) out[(i0 + i) * ld.o + c] = T(NAN);
}

template <typename T>
TINYML_CLONES void forward_tile(const T* q, const T* k, const T* v, T* out, T* lse, const T* mbase, const Mask& mk,
                                const Rows& ld, int tq, int tk, int d, int dv, int i0, T scale, bool causal,
                                bool v_nonfinite, T* work, int* iwork) {
  constexpr int W = vec<T>::W;
  const int mq = std::min(kBq, tq - i0), mp = (mq + W - 1) / W * W;  // queries, rounded to whole vectors
  T* qt = work;             // d x kBq: Q^T
  T* st = qt + d * kBq;     // kBk x kBq: S^T, then P^T
  T* acc = st + kBk * kBq;  // kBq x dv: unnormalized output
  T* m = acc + kBq * dv;    // running max and sum, and the factor of a step's rescaling
  T *l = m + kBq, *alpha = l + kBq;
  transpose_tile(q + i0 * ld.q, ld.q, mq, d, qt, kBq, T(1), mp);
  std::fill(acc, acc + mq * dv, T(0));
  std::fill(m, m + kBq, T(-INFINITY));
  std::fill(l, l + kBq, T(0));
  const int kend = causal ? std::min(tk, i0 + mq) : tk;
  for (int j0 = 0; j0 < kend; j0 += kBk) {
    const int nk = std::min(kBk, kend - j0);
    const bool diag = causal && j0 + nk - 1 > i0;  // the tile holds masked pairs
    gemm<T>(nk, mp, d, k + j0 * ld.k, ld.k, 1, qt, kBq, st, kBq, false, diag ? kColsFrom : kAll, j0 - i0);
    if (mbase)  // scale first: the mask is added to the scaled scores
      for (int j = 0; j < nk; ++j)
        for (int i = 0; i < mq; ++i)
          st[j * kBq + i] = st[j * kBq + i] * scale + mbase[(i0 + i) * mk.si + (j0 + j) * mk.sj];
    softmax_step<T>(st, nk, mp, i0, j0, diag, mbase ? T(1) : scale, m, l, alpha);
    for (int i = 0; i < mq; ++i)
      if (alpha[i] != T(1))
        for (int c = 0; c < dv; ++c) acc[i * dv + c] *= alpha[i];
    gemm<T>(mq, dv, nk, st, 1, kBq, v + j0 * ld.v, ld.v, acc, dv, true, diag ? kKUpto : kAll, i0 - j0);
  }
  for (int i = 0; i < mq; ++i) {
    const T s = l[i];
    // a query with every key masked (l = 0) gives 0, not NaN, as PyTorch; a NaN l stays NaN
    const T inv = s == 0 ? T(0) : T(1) / s;
    for (int c = 0; c < dv; ++c) out[(i0 + i) * ld.o + c] = acc[i * dv + c] * inv;
    lse[i0 + i] = s == 0 ? T(-INFINITY) : m[i] + std::log(s);
  }
  if (causal && v_nonfinite) causal_nan_forward(v, out, ld, tk, dv, i0, mq, iwork);
}

// The masked pairs' 0 * x terms of the backward's full products (see the header).
template <typename T>
void causal_nan_backward(const T* q, const T* k, const T* lse, const T* dout, T* dq, T* dk, T* dv_out,
                         const Rows& ld, int tq, int tk, int d, int dv, int* at) {
  int nan_row = tq;
  for (int i = 0; i < tq && nan_row == tq; ++i)
    if (lse[i] != lse[i]) nan_row = i;
  const bool g_bad = any_nonfinite(dout, ld.g, 0, tq, dv);
  if (g_bad || nan_row < tq) {  // dV[j][c] += P[i][j] dO[i][c] for i < j: 0 * inf, or NaN * x
    if (g_bad) nonfinite_rows(dout, ld.g, tq, dv, true, at);
    for (int c = 0; c < dv; ++c) at[c] = g_bad ? std::min(at[c], nan_row) : nan_row;
    for (int j = 0; j < tk; ++j)
      for (int c = 0; c < dv; ++c)
        if (at[c] < j) dv_out[j * ld.dv + c] = T(NAN);
  }
  if (any_nonfinite(k, ld.k, 0, tk, d)) {  // dQ[i][c] += 0 * K[j][c] for j > i
    nonfinite_rows(k, ld.k, tk, d, false, at);
    for (int i = 0; i < tq; ++i)
      for (int c = 0; c < d; ++c)
        if (at[c] > i) dq[i * ld.dq + c] = T(NAN);
  }
  if (any_nonfinite(q, ld.q, 0, tq, d)) {  // dK[j][c] += 0 * Q[i][c] for i < j
    nonfinite_rows(q, ld.q, tq, d, true, at);
    for (int j = 0; j < tk; ++j)
      for (int c = 0; c < d; ++c)
        if (at[c] < j) dk[j * ld.dk + c] = T(NAN);
  }
}

template <typename T>
TINYML_CLONES void backward_head(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout,
                                 const T* mbase, const Mask& mk, T* dq, T* dk, T* dv_out, const Rows& ld, int tq,
                                 int tk, int d, int dv, T scale, bool causal, T* work, int* iwork) {
  constexpr int W = vec<T>::W;
  T* kt = work;                  // d x kBk: K^T of one key tile
  T* vt = kt + d * kBk;          // dv x kBk: V^T
  T* p = vt + dv * kBk;          // kBq x kBk: S, then P
  T* ds = p + kBq * kBk;         // kBq x kBk: dP, then dS
  T* dk_acc = ds + kBq * kBk;    // kBk x d
  T* dv_acc = dk_acc + kBk * d;  // kBk x dv
  T* delta = dv_acc + kBk * dv;  // tq: rowsum(dO * O)
  for (int i = 0; i < tq; ++i) {
    T s = 0;
    const T *gi = dout + i * ld.g, *oi = o + i * ld.o;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < dv; ++c) s += gi[c] * oi[c];
    delta[i] = s;
    std::fill(dq + i * ld.dq, dq + i * ld.dq + d, T(0));
  }
  for (int j0 = 0; j0 < tk; j0 += kBk) {
    const int nk = std::min(kBk, tk - j0), np = (nk + W - 1) / W * W;
    transpose_tile(k + j0 * ld.k, ld.k, nk, d, kt, kBk, T(1), np);
    transpose_tile(v + j0 * ld.v, ld.v, nk, dv, vt, kBk, T(1), np);
    std::fill(dk_acc, dk_acc + nk * d, T(0));
    std::fill(dv_acc, dv_acc + nk * dv, T(0));
    for (int i0 = causal ? j0 : 0; i0 < tq; i0 += kBq) {  // causal: query tiles before j0 see none of these keys
      const int mq = std::min(kBq, tq - i0);
      const bool diag = causal && j0 + nk - 1 > i0;
      const int up = diag ? kColsUpto : kAll, kup = diag ? kKUpto : kAll, kfrom = diag ? kKFrom : kAll;
      gemm<T>(mq, np, d, q + i0 * ld.q, ld.q, 1, kt, kBk, p, kBk, false, up, i0 - j0);  // Q K^T
      for (int r = 0; r < mq; ++r) {
        const T L = lse[i0 + r], shift = L == -INFINITY ? T(INFINITY) : L;  // a fully masked row: P = 0
        const int last = causal ? i0 + r - j0 : nk;  // keys j > last are masked
        T* pr = p + r * kBk;
        if (mbase) {
          const T* mr = mbase + (i0 + r) * mk.si + j0 * mk.sj;
          for (int j = 0; j < nk; ++j) pr[j] = pr[j] * scale + mr[j * mk.sj];
        }
        const T mul = mbase ? T(1) : scale;  // S = scale Q K^T + mask, the same values as the forward's
#pragma omp simd
        for (int j = 0; j < nk; ++j) pr[j] = tinyml::vexp0<T>((j > last ? T(-INFINITY) : pr[j] * mul) - shift);
      }
      gemm<T>(nk, dv, mq, p, 1, kBk, dout + i0 * ld.g, ld.g, dv_acc, dv, true, kfrom, j0 - i0);  // dV += P^T dO
      gemm<T>(mq, np, dv, dout + i0 * ld.g, ld.g, 1, vt, kBk, ds, kBk, false, up, i0 - j0);      // dP = dO V^T
      for (int r = 0; r < mq; ++r) {
        const T dl = delta[i0 + r];
        const int last = causal ? i0 + r - j0 : nk;
        T* dr = ds + r * kBk;
        const T* pr = p + r * kBk;
        // a masked score is the constant -inf: its gradient is 0, not 0 * NaN when a row is NaN
#pragma omp simd
        for (int j = 0; j < nk; ++j) dr[j] = j > last ? T(0) : pr[j] * (dr[j] - dl) * scale;
      }
      gemm<T>(mq, d, nk, ds, kBk, 1, k + j0 * ld.k, ld.k, dq + i0 * ld.dq, ld.dq, true, kup, i0 - j0);  // dQ += dS K
      gemm<T>(nk, d, mq, ds, 1, kBk, q + i0 * ld.q, ld.q, dk_acc, d, true, kfrom, j0 - i0);            // dK += dS^T Q
    }
    for (int j = 0; j < nk; ++j) {
      std::copy(dk_acc + j * d, dk_acc + (j + 1) * d, dk + (j0 + j) * ld.dk);
      std::copy(dv_acc + j * dv, dv_acc + (j + 1) * dv, dv_out + (j0 + j) * ld.dv);
    }
  }
  if (causal) causal_nan_backward(q, k, lse, dout, dq, dk, dv_out, ld, tq, tk, d, dv, iwork);
}

}  // namespace tinyml_attention
