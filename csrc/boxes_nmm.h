// sahi's greedy and transitive non-maximum merging over (N, 4) xyxy boxes, float32 and float64, on the
// NMS sweep's index and candidate windows (boxes_nms.h; no Python here). The reference is
// tinyml/backends/reference/boxes.py (nmm_forward).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "boxes_nms.h"

namespace tinyml {
namespace boxes {

// Whether box a may claim box c in sahi's nmm (original indices): c scores lower, or equal and its
// coordinates do not sort after a's (x1, y1, x2, y2 lexicographically).
template <typename T>
bool dominates(const T* b, const T* sc, int64_t a, int64_t c) {
  if (a == c) return false;
  if (sc[c] < sc[a]) return true;
  if (!(sc[c] == sc[a])) return false;
  for (int k = 0; k < 4; ++k) {
    if (b[4 * c + k] > b[4 * a + k]) return false;
    if (b[4 * c + k] < b[4 * a + k]) return true;
  }
  return true;
}

// sahi's greedy (greedy = true) and transitive non-maximum merging: owner[j] is the keeper box j was
// merged into (itself for a keeper), claim[j] the sequence number of that claim. A greedy keeper claims
// the later unclaimed boxes that match it, in visiting order; otherwise every visited box claims, for
// its keeper, the unclaimed boxes it dominates and matches, in ascending index order. With t > 0 the
// candidates come from the sweep window (the same matches as the dense scan, as for nms_sweep), and
// the hits are put in the order the dense scan visits them; t <= 0 scans every box.
template <typename T, bool IOS>
TINYML_BOX_CLONES void nmm_sweep(const T* b, const T* sc, const int64_t* order, ssize n, T t, bool greedy,
                                 int64_t* owner, int64_t* claim) {
  const Soa<T> s(b, order, n);
  const SweepIndex<T> ix(s, n);
  std::vector<int32_t> hits(ix.pos.size());
  std::vector<int64_t> found;  // greedy: visiting positions; else original indices
  int64_t seq = 0;
  for (ssize p = 0; p < n; ++p) {
    const int64_t i = order[p];
    if (owner[i] < 0) {
      owner[i] = i;
      claim[i] = seq++;
    } else if (greedy) {
      continue;
    }
    if (ix.slot[p] < 0) continue;  // matches nothing
    const auto win = ix.window(s, p, t, IOS);
    match_row<T, IOS, true>(ix, s, p, win.first, win.second, t, hits.data());
    found.clear();
    for (size_t q = win.first; q < win.second; ++q) {
      if (!hits[q - win.first]) continue;
      const int64_t j = order[ix.pos[q]];
      if (owner[j] >= 0) continue;
      if (greedy ? ix.pos[q] > p : dominates(b, sc, i, j)) found.push_back(greedy ? ix.pos[q] : j);
    }
    std::sort(found.begin(), found.end());
    for (const int64_t f : found) {
      const int64_t j = greedy ? order[f] : f;
      owner[j] = owner[i], claim[j] = seq++;
    }
  }
}

template <typename T>
void nmm_dense(const T* b, const T* sc, const int64_t* order, ssize n, T t, bool ios, bool greedy, int64_t* owner,
               int64_t* claim) {
  const Soa<T> s(b, order, n);
  std::vector<ssize> pos_of(n);
  for (ssize k = 0; k < n; ++k) pos_of[order[k]] = k;
  int64_t seq = 0;
  for (ssize p = 0; p < n; ++p) {
    const int64_t i = order[p];
    if (owner[i] < 0) {
      owner[i] = i;
      claim[i] = seq++;
    } else if (greedy) {
      continue;
    }
    const int64_t keeper = owner[i];
    if (greedy) {
      for (ssize q = p + 1; q < n; ++q) {
        const int64_t j = order[q];
        if (owner[j] < 0 && s.match(p, q, t, ios, true)) owner[j] = keeper, claim[j] = seq++;
      }
    } else {
      for (int64_t j = 0; j < n; ++j)
        if (owner[j] < 0 && dominates(b, sc, i, j) && s.match(p, pos_of[j], t, ios, true))
          owner[j] = keeper, claim[j] = seq++;
    }
  }
}

// owner and claim: n entries each, written here.
template <typename T>
void nmm_dispatch(const T* b, const T* sc, const int64_t* order, ssize n, T t, bool ios, bool greedy,
                  int64_t* owner, int64_t* claim) {
  for (ssize k = 0; k < n; ++k) owner[k] = claim[k] = -1;
  if (t > 0 && n < (ssize(1) << 31)) {
    if (ios) return nmm_sweep<T, true>(b, sc, order, n, t, greedy, owner, claim);
    return nmm_sweep<T, false>(b, sc, order, n, t, greedy, owner, claim);
  }
  nmm_dense<T>(b, sc, order, n, t, ios, greedy, owner, claim);
}

}  // namespace boxes
}  // namespace tinyml
