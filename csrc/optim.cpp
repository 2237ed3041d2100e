// Optimizer steps over lists of parameters in one call, in place, float32 and float64:
//
//   adam_step (PyTorch's Adam/AdamW order of operations):
//       Adam: g <- g + wd p      AdamW: p <- p (1 - lr wd)
//       m <- m + (g - m)(1 - b1);  v <- b2 v + (1 - b2) g^2;  (AMSGrad: vmax <- max(vmax, v), v = vmax,
//       NaN-propagating as torch.maximum)
//       p <- p - lr/(1 - b1^t) * m / (sqrt(v)/sqrt(1 - b2^t) + eps)
//   sgd_step: d = +-g + wd p;  buf <- d (first step) or momentum buf + (1 - dampening) d;
//             d = d + momentum buf (nesterov) or buf;  p <- p - lr d
//
// All tensors of the call are cut into chunks of at most 64K elements and the chunks are shared
// among the threads in one parallel region, so a model of many small tensors costs one fork/join,
// not one per tensor. The chunks go to whichever thread asks next (schedule(dynamic)): they differ
// in size (a bias is one chunk of a few hundred elements), so a static split by count would leave one
// thread most of the elements, and the calling thread starts at once while the other wakes up.
// Each element is updated alone, so the bits do not depend on which thread runs it. Everything is
// validated (dtype, shape, contiguity, writeability) before the first write, so a bad list never
// leaves half the parameters updated.
#include "simd_math.h"  // first: sets fp-contract for this file
#include "common.h"

#include <pybind11/stl.h>

#include <optional>
#include <utility>

namespace {

constexpr int64_t kChunk = 1 << 16;

struct Chunk {
  size_t tensor;
  int64_t begin, end;
};

std::vector<Chunk> make_chunks(const std::vector<int64_t>& sizes) {
  std::vector<Chunk> chunks;
  for (size_t t = 0; t < sizes.size(); ++t)
    for (int64_t b = 0; b < sizes[t]; b += kChunk) chunks.push_back({t, b, std::min(sizes[t], b + kChunk)});
  return chunks;
}

template <typename F>
void run_chunks(const std::vector<Chunk>& chunks, int64_t total, F f) {
  py::gil_scoped_release release;
  int64_t nc = int64_t(chunks.size());
#pragma omp parallel for schedule(dynamic, 1) if (total > 32768 && nc > 1)
  for (int64_t c = 0; c < nc; ++c) f(chunks[c]);
}

// Elements before p's next 64-byte boundary (0 if p is not aligned to its own type). The chunk
// functions' vector loops load and store 64 bytes at a time; numpy's arrays start where malloc puts
// them (16 bytes into a line), so every AVX-512 access of a misaligned array spans two cache lines.
// A chunk runs its first elements alone (the same per-element arithmetic, so the same bits) and the
// rest from p's boundary: p, and every array at p's offset, then goes a line at a time. 11M float32
// params, 1 thread: 6.7-6.9 -> 5.25 ms with p, g, m, v at one offset, 7.1-7.25 -> 6.6 ms at the
// offsets numpy gave them; PyTorch's fused step (64-byte aligned tensors) 4.9-5.1 ms
// (docs/cpu_speed.md "Session 13: ... AdamW line splits").
template <typename T>
int64_t to_line(const T* p, int64_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a % sizeof(T)) return 0;
  return std::min<int64_t>(n, int64_t((64 - (a & 63)) & 63) / int64_t(sizeof(T)));
}

struct Adam {
  double lr, b1, b2, eps, wd, bc1, bc2_sqrt;
  bool decoupled;
};

// One pass per element: m, v (and vmax), then p. The sqrt is IEEE's (vsqrtps at the loop's vector
// width: setup.py builds with -fno-math-errno, so std::sqrt has no errno path that would keep the loop
// scalar). An earlier version kept v in an L1 buffer and took the sqrt in a separate 4-wide SSE pass:
// the same bits, about 1.4x the time.
template <typename T>
TINYML_CLONES void adam_chunk(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                              T* __restrict vmax, int64_t n, const Adam a) {
  const T lr_wd = T(1 - a.lr * a.wd), wd = T(a.wd), one_b1 = T(1 - a.b1), b2 = T(a.b2), one_b2 = T(1 - a.b2);
  const T step = T(a.lr / a.bc1), bc2 = T(a.bc2_sqrt), eps = T(a.eps);
  const bool decay = a.wd != 0, dec = a.decoupled;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T gi = g[i];
    if (decay && !dec) gi = gi + wd * p[i];
    T mi = m[i] + (gi - m[i]) * one_b1;
    T vi = v[i] * b2 + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    if (vmax) {
      const T w = vmax[i];
      vi = (w > vi || w != w) ? w : vi;  // torch.maximum: a NaN on either side wins
      vmax[i] = vi;
    }
    T pi = decay && dec ? p[i] * lr_wd : p[i];
    p[i] = pi - step * (mi / (std::sqrt(vi) / bc2 + eps));
  }
}

struct Sgd {
  double lr, momentum, dampening, wd;
  bool nesterov, maximize;
};

// first: the buffer has just been created and receives d itself (PyTorch's first momentum step).
template <typename T>
TINYML_CLONES void sgd_chunk(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t n, const Sgd s,
                             bool first) {
  const T lr = T(s.lr), mom = T(s.momentum), damp = T(1 - s.dampening), wd = T(s.wd);
  const T sign = s.maximize ? T(-1) : T(1);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T d = sign * g[i];
    if (s.wd != 0) d = d + wd * p[i];
    if (buf) {
      T b = first ? d : buf[i] * mom + damp * d;
      buf[i] = b;
      d = s.nesterov ? d + mom * b : b;
    }
    p[i] = p[i] - lr * d;
  }
}

// ---- validation ------------------------------------------------------------------------------

template <typename T>
void check_list(const std::vector<py::array>& xs, const std::vector<py::array>& params, const char* what,
                const char* op, bool writeable) {
  if (xs.size() != params.size())
    throw py::value_error(std::string(op) + ": got " + std::to_string(params.size()) + " params but " +
                          std::to_string(xs.size()) + " " + what);
  for (size_t i = 0; i < xs.size(); ++i) {
    std::string name = std::string(what) + "[" + std::to_string(i) + "]";
    tinyml::check_array<T>(xs[i], name.c_str());
    tinyml::check_same_shape(params[i], xs[i], ("params[" + std::to_string(i) + "]").c_str(), name.c_str());
    if (writeable && !xs[i].writeable()) throw py::value_error(std::string(op) + ": " + name + " is read-only");
  }
}

template <typename T>
void adam_t(std::vector<py::array> ps, std::vector<py::array> gs, std::vector<py::array> ms,
            std::vector<py::array> vs, std::optional<std::vector<py::array>> vmaxs, const Adam& a) {
  const char* op = "adam_step";
  check_list<T>(ps, ps, "params", op, true);
  check_list<T>(gs, ps, "grads", op, false);
  check_list<T>(ms, ps, "exp_avgs", op, true);
  check_list<T>(vs, ps, "exp_avg_sqs", op, true);
  if (vmaxs) check_list<T>(*vmaxs, ps, "max_exp_avg_sqs", op, true);
  std::vector<int64_t> sizes;
  std::vector<T*> pp, mp, vp, xp;
  std::vector<const T*> gp;
  int64_t total = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    sizes.push_back(ps[i].size());
    total += ps[i].size();
    pp.push_back(static_cast<T*>(ps[i].mutable_data()));
    gp.push_back(static_cast<const T*>(gs[i].data()));
    mp.push_back(static_cast<T*>(ms[i].mutable_data()));
    vp.push_back(static_cast<T*>(vs[i].mutable_data()));
    xp.push_back(vmaxs ? static_cast<T*>((*vmaxs)[i].mutable_data()) : nullptr);
  }
  auto chunks = make_chunks(sizes);
  run_chunks(chunks, total, [&](const Chunk& c) {
    size_t t = c.tensor;
    const int64_t b = c.begin, h = to_line(pp[t] + b, c.end - b);
    for (const auto& [s, n] : {std::pair<int64_t, int64_t>{b, h}, {b + h, c.end - b - h}})
      if (n) adam_chunk<T>(pp[t] + s, gp[t] + s, mp[t] + s, vp[t] + s, xp[t] ? xp[t] + s : nullptr, n, a);
  });
}

template <typename T>
py::list sgd_t(std::vector<py::array> ps, std::vector<py::array> gs, std::vector<py::object> bufs, const Sgd& s) {
  const char* op = "sgd_step";
  check_list<T>(ps, ps, "params", op, true);
  check_list<T>(gs, ps, "grads", op, false);
  if (bufs.size() != ps.size())
    throw py::value_error(std::string(op) + ": got " + std::to_string(ps.size()) + " params but " +
                          std::to_string(bufs.size()) + " momentum_buffers");
  py::list out;
  std::vector<int64_t> sizes;
  std::vector<T*> pp, bp;
  std::vector<const T*> gp;
  std::vector<char> first;
  int64_t total = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    py::object buf = bufs[i];
    bool fresh = false;
    if (s.momentum != 0) {
      if (buf.is_none()) {
        buf = py::array_t<T>(std::vector<py::ssize_t>(ps[i].shape(), ps[i].shape() + ps[i].ndim()));
        fresh = true;
      } else {
        py::array b = py::reinterpret_borrow<py::array>(buf);
        std::string name = "momentum_buffers[" + std::to_string(i) + "]";
        if (!py::isinstance<py::array>(buf)) throw py::type_error(std::string(op) + ": " + name + " is not an array");
        tinyml::check_array<T>(b, name.c_str());
        tinyml::check_same_shape(ps[i], b, ("params[" + std::to_string(i) + "]").c_str(), name.c_str());
        if (!b.writeable()) throw py::value_error(std::string(op) + ": " + name + " is read-only");
      }
    }
    out.append(buf);
    sizes.push_back(ps[i].size());
    total += ps[i].size();
    pp.push_back(static_cast<T*>(ps[i].mutable_data()));
    gp.push_back(static_cast<const T*>(gs[i].data()));
    bp.push_back(s.momentum != 0 ? static_cast<T*>(py::reinterpret_borrow<py::array>(buf).mutable_data()) : nullptr);
    first.push_back(fresh);
  }
  auto chunks = make_chunks(sizes);
  run_chunks(chunks, total, [&](const Chunk& c) {
    size_t t = c.tensor;
    const int64_t b = c.begin, h = to_line(pp[t] + b, c.end - b);
    for (const auto& [u, n] : {std::pair<int64_t, int64_t>{b, h}, {b + h, c.end - b - h}})
      if (n) sgd_chunk<T>(pp[t] + u, gp[t] + u, bp[t] ? bp[t] + u : nullptr, n, s, first[t]);
  });
  return out;
}

// The dtype of a call is its first parameter's; an empty list is a no-op.
int list_dtype(const std::vector<py::array>& ps, const char* op) {
  if (ps.empty()) return 0;
  if (tinyml::has_dtype<float>(ps[0])) return 1;
  if (tinyml::has_dtype<double>(ps[0])) return 2;
  throw py::type_error(std::string(op) + ": dtype " + std::string(py::str(ps[0].dtype())) +
                       " not supported (float32, float64)");
}

Adam make_adam(double lr, double b1, double b2, double eps, double wd, int64_t step, bool decoupled) {
  if (step < 1) throw py::value_error("adam_step: step must be >= 1 (the count after increment), got " +
                                      std::to_string(step));
  return Adam{lr, b1, b2, eps, wd, 1 - std::pow(b1, double(step)), std::sqrt(1 - std::pow(b2, double(step))),
              decoupled};
}

}  // namespace

void init_optim(py::module_& m) {
  using L = std::vector<py::array>;
  m.def("adam_step", [](L ps, L gs, L ms, L vs, double lr, double b1, double b2, double eps, double wd, int64_t step,
                        bool decoupled) {
    Adam a = make_adam(lr, b1, b2, eps, wd, step, decoupled);
    int k = list_dtype(ps, "adam_step");
    if (k == 1) adam_t<float>(ps, gs, ms, vs, std::nullopt, a);
    if (k == 2) adam_t<double>(ps, gs, ms, vs, std::nullopt, a);
  }, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("lr"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("step"), py::arg("decoupled"));
  m.def("adam_amsgrad_step", [](L ps, L gs, L ms, L vs, L vmax, double lr, double b1, double b2, double eps,
                                double wd, int64_t step, bool decoupled) {
    Adam a = make_adam(lr, b1, b2, eps, wd, step, decoupled);
    int k = list_dtype(ps, "adam_amsgrad_step");
    if (k == 1) adam_t<float>(ps, gs, ms, vs, vmax, a);
    if (k == 2) adam_t<double>(ps, gs, ms, vs, vmax, a);
  }, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("max_exp_avg_sqs"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("step"),
        py::arg("decoupled"));
  m.def("sgd_step", [](L ps, L gs, std::vector<py::object> bufs, double lr, double momentum, double dampening,
                       double wd, bool nesterov, bool maximize) -> py::list {
    Sgd s{lr, momentum, dampening, wd, nesterov, maximize};
    int k = list_dtype(ps, "sgd_step");
    if (k == 1) return sgd_t<float>(ps, gs, bufs, s);
    if (k == 2) return sgd_t<double>(ps, gs, bufs, s);
    return py::list();
  }, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("lr"), py::arg("momentum"),
        py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"));
}
