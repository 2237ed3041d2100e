// Driver for csrc/boxes_nms.h and boxes_nmm.h without Python, so tests/ops/test_boxes_nms_builds.py can run the NMS and
// merging kernels as the AVX-512 / AVX2 / baseline x86-64 builds compile them and compare each with
// the numpy reference. Reads cases from stdin, one after the other:
//   nms <f32|f64> <n> <t> <iou|ios> <inclusive 0|1>   or   nmm <f32|f64> <n> <t> <iou|ios> <greedy 0|1>
// then n boxes (4 numbers each), for nmm n scores, then the visiting order (n indices). Numbers are
// anything strtod reads (the test writes float.hex()). Writes one line per case: the kept indices
// (nms), or the owners, a '|', and the claim numbers (nmm).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "boxes_nmm.h"
#include "boxes_nms.h"

namespace {

double read_number() {
  char buf[128];
  if (std::scanf("%127s", buf) != 1) {
    std::fprintf(stderr, "boxes_nms_check: unexpected end of input\n");
    std::exit(2);
  }
  return std::strtod(buf, nullptr);
}

void print_list(const std::vector<int64_t>& v) {
  for (size_t k = 0; k < v.size(); ++k) std::printf(k ? " %lld" : "%lld", static_cast<long long>(v[k]));
}

template <typename T>
void run_case(const std::string& kind, long n, double t, bool ios, bool flag) {
  std::vector<T> boxes(4 * n), scores(n);
  std::vector<int64_t> order(n);
  for (auto& v : boxes) v = static_cast<T>(read_number());
  if (kind == "nmm")
    for (auto& v : scores) v = static_cast<T>(read_number());
  for (auto& v : order) v = static_cast<int64_t>(read_number());
  if (kind == "nms") {
    print_list(tinyml::boxes::nms_dispatch<T>(boxes.data(), order.data(), n, static_cast<T>(t), ios, flag));
  } else {
    std::vector<int64_t> owner(n), claim(n);
    tinyml::boxes::nmm_dispatch<T>(boxes.data(), scores.data(), order.data(), n, static_cast<T>(t), ios, flag,
                                   owner.data(), claim.data());
    print_list(owner);
    std::printf(" | ");
    print_list(claim);
  }
  std::printf("\n");
}

}  // namespace

int main() {
  char kind[8], dtype[8], metric[8];
  long n;
  int flag;
  char tbuf[128];
  while (std::scanf("%7s %7s %ld %127s %7s %d", kind, dtype, &n, tbuf, metric, &flag) == 6) {
    const double t = std::strtod(tbuf, nullptr);
    const bool ios = std::string(metric) == "ios";
    if (std::string(dtype) == "f32")
      run_case<float>(kind, n, t, ios, flag != 0);
    else
      run_case<double>(kind, n, t, ios, flag != 0);
  }
  return 0;
}
