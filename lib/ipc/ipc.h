/*
 * IPC framing between auditrelayd and its children: a uint32 big-endian
 * length, then one packed ar.Envelope. Frames of length 0 or more than
 * IPC_FRAME_MAX are refused; bytes that do not unpack close the channel;
 * unknown oneof cases are dropped by the dispatchers. Typed senders live
 * here so that handlers never build envelopes by hand.
 */
#ifndef AR_LIB_IPC_H
#define AR_LIB_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "ipc.pb-c.h"

/*
 * A frame at most: room for a BatchStored hint carrying a whole batch of
 * the default delivery_batch_max_bytes (1 MiB), so that deliverd reads a
 * body back from the store only after a restart or a lost hint.
 */
#define IPC_FRAME_MAX (2 * 1024 * 1024)
#define IPC_CHILD_FD  3

struct ipc_chan;
struct config;

typedef void (*ipc_msg_cb)(struct ipc_chan *, const Ar__Envelope *, void *);
/* Called once when the peer closed or the stream broke; err says why. */
typedef void (*ipc_close_cb)(struct ipc_chan *, const char *err, void *);

/*
 * Pack env into a frame appended to out. 0, -EMSGSIZE when too large,
 * -ENOMEM.
 */
int ipc_frame_encode(const Ar__Envelope *env, struct evbuffer *out);
/*
 * Take one frame off the front of in. 1 and *env (free with
 * ar__envelope__free_unpacked(env, NULL)) when a whole frame was there,
 * 0 when more bytes are needed, -EMSGSIZE for a zero or oversized length,
 * -EBADMSG for bytes that do not unpack.
 */
int ipc_frame_decode(struct evbuffer *in, Ar__Envelope **env);

/* A framed channel over a connected stream socket on the event base. */
struct ipc_chan *ipc_chan_new(struct event_base *base, int fd, ipc_msg_cb,
    ipc_close_cb, void					  *arg);
/* Close the socket and free; NULL is a no-op. */
void ipc_chan_free(struct ipc_chan *ch);
int  ipc_chan_fd(const struct ipc_chan *ch);
/* Queue env for sending. 0 or -errno. */
int ipc_chan_send(struct ipc_chan *ch, const Ar__Envelope *env);
/* Bytes queued but not yet written. */
size_t ipc_chan_pending(const struct ipc_chan *ch);
/* Counters for metrics. */
uint64_t ipc_chan_sent(const struct ipc_chan *ch);
uint64_t ipc_chan_received(const struct ipc_chan *ch);

/* Typed senders. */
int ipc_send_hello(struct ipc_chan *, Ar__Daemon daemon);
int ipc_send_config(struct ipc_chan *, uint32_t generation,
    const struct config *cfg, const char *instance_id);
int ipc_send_ready(struct ipc_chan *, uint32_t generation);
int ipc_send_config_ack(struct ipc_chan *, uint32_t generation, bool ok,
    const char *error);
int ipc_send_ping(struct ipc_chan *, uint64_t seq);
int ipc_send_pong(struct ipc_chan *, uint64_t seq, uint64_t store_errors);
int ipc_send_shutdown(struct ipc_chan *, uint32_t grace_ms);
int ipc_send_source_changed(struct ipc_chan *, const char *source_id,
    bool removed);
int ipc_send_logs_stored(struct ipc_chan *, const char *source_id,
    uint32_t count);
/*
 * The largest body a BatchStored hint carries (the rest of a frame: ids);
 * body_coll names the bodies_* partition that holds it in the store.
 */
#define IPC_BATCH_BODY_MAX (IPC_FRAME_MAX - 4096)
int ipc_send_batch_stored(struct ipc_chan *, const char *source_id,
    const char *batch_id, const char *webhook_id, uint32_t n_logs,
    int64_t created_at, const char *body, size_t body_len,
    const char *body_coll);
int ipc_send_child_status(struct ipc_chan *, bool store_ok, const char *detail);
/* Forward an envelope as is (the supervisor relays hints). */
int ipc_send_envelope(struct ipc_chan *, const Ar__Envelope *env);

/*
 * Rebuild a struct config from a Config message (config_init + config_set
 * of each entry). 0 or -EINVAL with err[] naming the key.
 */
int ipc_config_apply(const Ar__Config *msg, struct config *cfg, char *err,
    size_t errlen);

const char *ipc_daemon_name(Ar__Daemon d);

#endif
