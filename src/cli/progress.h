// A one-line progress bar with rate and ETA on stderr, drawn only when stderr
// is a terminal (quiet in pipes, logs and CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ropescale::cli {

// "1:05" or "1:02:03".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  // `unit` names what is counted ("tok").
  ProgressBar(std::string label, std::string unit);
  ~ProgressBar();
  void update(int64_t done, int64_t total);
  void finish();  // clears the line

 private:
  std::string label_, unit_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace ropescale::cli
