#include "tools/ctl/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>

#include "tools/ctl/output.hpp"

namespace lorakeep::ctl {

bool stderr_is_terminal() noexcept {
  return ::isatty(STDERR_FILENO) == 1;
}

Progress::Progress(std::size_t total, bool enabled)
    : total_(total), enabled_(enabled && total > 0), start_(Clock::now()) {}

Progress::~Progress() {
  finish();
}

void Progress::update(std::size_t done) {
  if (!enabled_) return;
  const auto now = Clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(200) && done < total_) return;
  last_ = now;
  drawn_ = true;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  constexpr std::size_t width = 30;
  const std::size_t filled = std::min(width, total_ == 0 ? width : done * width / total_);
  std::string bar(filled, '#');
  bar.append(width - filled, '.');
  std::string eta = "--:--";
  if (rate > 0 && done < total_) {
    const auto left = static_cast<long>(static_cast<double>(total_ - done) / rate);
    std::array<char, 32> buf{};
    std::snprintf(buf.data(), buf.size(), "%ld:%02ld", left / 60, left % 60);
    eta = buf.data();
  } else if (done >= total_) {
    eta = "0:00";
  }
  std::array<char, 64> pct{};
  std::snprintf(
      pct.data(), pct.size(), "%3.0f%%",
      total_ == 0 ? 100.0 : 100.0 * static_cast<double>(done) / static_cast<double>(total_));
  const std::string line = "\r" + thousands(done) + "/" + thousands(total_) + " " + pct.data() +
                           " [" + bar + "] " + thousands(static_cast<std::size_t>(rate)) +
                           " rows/s  ETA " + eta + "\033[K";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

void Progress::finish() noexcept {
  if (!enabled_ || !drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace lorakeep::ctl
