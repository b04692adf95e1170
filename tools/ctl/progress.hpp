// A one-line progress bar with rate and ETA on stderr, drawn only when stderr is a terminal.
#pragma once

#include <chrono>
#include <cstddef>

namespace lorakeep::ctl {

class Progress {
 public:
  /// `enabled` false draws nothing (not a terminal).
  Progress(std::size_t total, bool enabled);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  Progress(Progress&&) = delete;
  Progress& operator=(Progress&&) = delete;

  /// Redraws with `done` of `total`, at most five times a second.
  void update(std::size_t done);
  /// Erases the line (also done by the destructor).
  void finish() noexcept;

 private:
  using Clock = std::chrono::steady_clock;
  std::size_t total_;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_;
  Clock::time_point last_{};
};

/// Whether stderr is a terminal.
bool stderr_is_terminal() noexcept;

}  // namespace lorakeep::ctl
