#include "host/registry/registry.hpp"

#include <algorithm>

namespace lorakeep::host::registry {

DevNonceVerdict check_dev_nonce(const NonceState& state, lorawan::DevNonce nonce, bool counter) {
  if (counter) {
    if (!state.dev_nonce_last) return DevNonceVerdict::fresh;
    if (nonce.value == *state.dev_nonce_last) return DevNonceVerdict::replayed;
    if (nonce.value < *state.dev_nonce_last) return DevNonceVerdict::not_increasing;
    return DevNonceVerdict::fresh;
  }
  const auto& history = state.dev_nonce_history;
  return std::find(history.begin(), history.end(), nonce.value) == history.end()
             ? DevNonceVerdict::fresh
             : DevNonceVerdict::replayed;
}

}  // namespace lorakeep::host::registry
