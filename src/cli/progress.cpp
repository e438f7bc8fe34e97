#include "progress.h"

#include <cstdio>
#include <unistd.h>

#include <fmt/core.h>

namespace ropescale::cli {

std::string format_duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{}:{:02}", s / 60, s % 60);
}

ProgressBar::ProgressBar(std::string label, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), enabled_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(int64_t done, int64_t total) {
  if (!enabled_ || total <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = std::min(1.0, double(done) / double(total));
  const int width = 28, fill = static_cast<int>(frac * width);
  const double rate = elapsed > 0 ? double(done) / elapsed : 0;
  const std::string eta = done > 0 && done < total ? format_duration(elapsed * double(total - done) / double(done)) : "--:--";
  std::fprintf(stderr, "\r%s [%s%s] %3.0f%%  %.0f %s/s  elapsed %s  ETA %s \033[K", label_.c_str(),
               std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), frac * 100, rate, unit_.c_str(),
               format_duration(elapsed).c_str(), eta.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::fputs("\r\033[K", stderr), std::fflush(stderr);
  drawn_ = false;
}

}  // namespace ropescale::cli
