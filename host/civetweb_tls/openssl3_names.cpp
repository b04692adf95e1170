// Debian 12's CivetWeb 1.15 loads OpenSSL at run time with dlopen("libssl.so") and looks up
// SSL_get_peer_certificate, a name OpenSSL 3 no longer exports (it is a macro for
// SSL_get1_peer_certificate). CivetWeb then calls a null pointer on the first TLS connection
// (upstream: civetweb/civetweb#1334). This library is named libssl.so, is loaded before
// CivetWeb starts (lorakeep-js links it), depends on the real libssl.so.3, and adds the old
// name. CivetWeb's dlopen("libssl.so") finds it already loaded by that name, and every other
// lookup falls through to libssl.so.3.
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate

extern "C" {

__attribute__((visibility("default"))) X509* SSL_get_peer_certificate(const SSL* ssl) {
  return SSL_get1_peer_certificate(ssl);
}

/// Called by lorakeep's HTTPS server at start so that the linker keeps this library.
__attribute__((visibility("default"))) int lorakeep_civetweb_openssl3_names() {
  return 1;
}

}  // extern "C"
