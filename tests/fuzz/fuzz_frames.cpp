// libFuzzer target for everything lorakeep reads off a wire before it knows whom it talks to:
// the frame decoder of the host <-> appliance stream, the protobuf Request and Response
// behind each frame, and the LoRaWAN frame parsers. Besides "no crash, no UB, no leak" it
// checks properties whose failure would be a bug (__builtin_trap, so libFuzzer reports it).
//
//   CXX=clang++ meson setup build/fuzz -Dtests=true -Dfuzzers=enabled
//   ninja -C build/fuzz tests/fuzz/fuzz_frames
//   build/fuzz/tests/fuzz/fuzz_frames tests/fuzz/corpus   # runs until stopped
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "crypto.pb.h"
#include "schemas/frame.hpp"
#include "schemas/lorawan/frames.hpp"

using namespace lorakeep;

namespace {

void require(bool property) {
  if (!property) __builtin_trap();
}

// Parse, re-serialize, parse again: what was accepted once must be accepted again and give
// the same bytes (a parser that reads past its input or misframes a field breaks this).
template <class Message>
void round_trip(std::span<const std::uint8_t> bytes) {
  Message first;
  if (!first.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  std::string wire;
  require(first.SerializeToString(&wire));
  Message second;
  require(second.ParseFromString(wire));
  std::string again;
  require(second.SerializeToString(&again));
  require(again == wire);
  (void)first.ByteSizeLong();
}

void request_fields(std::span<const std::uint8_t> bytes) {
  crypto::v1::Request r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  // What a server looks at first, on whatever parsed.
  switch (r.operation_case()) {
    case crypto::v1::Request::kJoin:
      (void)lorawan::JoinRequest::parse(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(r.join().phy_payload().data()),
          r.join().phy_payload().size()));
      (void)lorawan::parse_mac_version(r.join().mac_version());
      break;
    case crypto::v1::Request::kRejoin:
      (void)lorawan::RejoinRequest::parse(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(r.rejoin().phy_payload().data()),
          r.rejoin().phy_payload().size()));
      break;
    default:
      break;
  }
}

void payload(std::span<const std::uint8_t> bytes) {
  require(!bytes.empty() && bytes.size() <= frame::max_payload);
  round_trip<crypto::v1::Request>(bytes);
  round_trip<crypto::v1::Response>(bytes);
  request_fields(bytes);
}

void decoder(std::span<const std::uint8_t> data) {
  frame::Decoder d;
  std::size_t fed = 0;
  std::size_t taken = 0;
  // Chunk sizes come from the data itself, so the fuzzer explores split headers and
  // payloads as a socket delivers them.
  std::size_t i = 0;
  while (i < data.size()) {
    const std::size_t chunk = std::min<std::size_t>(data.size() - i, 1U + (data[i] % 23U));
    auto r = d.feed(data.subspan(i, chunk));
    fed += chunk;
    i += chunk;
    if (!r) {
      require(d.failed());
      require(!d.has_payload());
      require(!d.feed(data.subspan(0, 0)).ok());  // failed for good
      return;
    }
    while (d.has_payload()) {
      auto p = d.take_payload();
      taken += frame::header_size + p.size();
      payload(p);
    }
    require(d.pending() + taken == fed);
  }
}

void lorawan_frames(std::span<const std::uint8_t> data) {
  if (auto j = lorawan::JoinRequest::parse(data)) {
    require(data.size() == lorawan::JoinRequest::size);
    const auto encoded = j->encode();
    require(std::equal(encoded.begin(), encoded.end(), data.begin(), data.end()));
  }
  if (auto r = lorawan::RejoinRequest::parse(data)) {
    require(r->net_id.has_value() != r->join_eui.has_value());
    const auto encoded = r->encode();
    require(std::equal(encoded.begin(), encoded.end(), data.begin(), data.end()));
  }
  if (auto a = lorawan::JoinAccept::parse_plaintext(data)) {
    auto encoded = a->fields.encode_without_mic();
    encoded.insert(encoded.end(), a->mic.begin(), a->mic.end());
    // MHDR RFU bits are not kept (encode writes 0x20); everything after must match.
    require(encoded.size() == data.size());
    require(std::equal(encoded.begin() + 1, encoded.end(), data.begin() + 1));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* raw, std::size_t size) {
  const std::span<const std::uint8_t> data(raw, size);
  decoder(data);
  if (size >= frame::header_size) {
    (void)frame::parse_header(data.first<frame::header_size>());
  }
  if (!data.empty() && size <= frame::max_payload) {
    payload(data);
    auto framed = frame::encode(data);
    require(framed.ok() && framed->size() == size + frame::header_size);
  }
  lorawan_frames(data);
  return 0;
}
