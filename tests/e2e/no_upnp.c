/*
 * A stand-in for libgupnp-igd-1.0.so.4 that offers no UPnP port mapping, so Debian bookworm's
 * `simple-whip-client` (package simple-whip-client, binary whip-client) can start at all.
 *
 * Why: whip-client links libsoup 2; GStreamer's nice plugin links libnice, which links
 * libgupnp-igd-1.0, which links gupnp-1.6 and through it libsoup 3. libsoup aborts a process
 * that holds both ("libsoup2 symbols detected. Using libsoup2 and libsoup3 in the same process
 * is not supported"), before any WebRTC happens. A Debian packaging clash, not a WHIP matter.
 *
 * What it changes: libnice asks a home router (UPnP IGD) to open a port for its candidates;
 * with this library `gupnp_simple_igd_thread_new` returns NULL, which libnice handles as "no
 * UPnP agent" (it logs it and gathers host candidates as usual). Nothing else in the media
 * path goes through gupnp-igd. These four symbols are all libnice 0.1.21 imports from it
 * (`nm -D --undefined-only libnice.so.10 | grep gupnp`).
 *
 * Built by tests/whip.rs into a temporary directory that `LD_LIBRARY_PATH` puts first, for the
 * whip-client process only.
 */
#include <stddef.h>

/* G_TYPE_OBJECT (GLib's fundamental type 20 << 2); only used to cast a non-NULL agent. */
unsigned long gupnp_simple_igd_get_type(void) { return 80; }

void *gupnp_simple_igd_thread_new(void) { return NULL; }

void gupnp_simple_igd_add_port(void *self, const char *protocol, unsigned short external_port,
                               const char *local_ip, unsigned short local_port,
                               unsigned int lease_duration, const char *description) {}

void gupnp_simple_igd_remove_port_local(void *self, const char *protocol, const char *local_ip,
                                        unsigned short local_port) {}
