/*
 * IPC framing and channels. See ipc.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>

#include "lib/base/util.h"
#include "lib/ipc/config.h"
#include "lib/ipc/ipc.h"

struct ipc_chan {
	struct bufferevent *bev;
	int		    fd;
	ipc_msg_cb	    on_msg;
	ipc_close_cb	    on_close;
	void		   *arg;
	bool		    closed;
	uint64_t	    sent, received;
};

int
ipc_frame_encode(const Ar__Envelope *env, struct evbuffer *out)
{
	size_t	 len = ar__envelope__get_packed_size(env);
	uint32_t be;
	uint8_t *buf;

	if (len > IPC_FRAME_MAX)
		return -EMSGSIZE;
	if ((buf = malloc(len + 4)) == NULL)
		return -ENOMEM;
	be = htonl((uint32_t)len);
	memcpy(buf, &be, 4);
	ar__envelope__pack(env, buf + 4);
	if (evbuffer_add(out, buf, len + 4) != 0) {
		free(buf);
		return -ENOMEM;
	}
	free(buf);
	return 0;
}

int
ipc_frame_decode(struct evbuffer *in, Ar__Envelope **env)
{
	uint32_t be, len;
	uint8_t *p;

	*env = NULL;
	if (evbuffer_get_length(in) < 4)
		return 0;
	evbuffer_copyout(in, &be, 4);
	len = ntohl(be);
	if (len == 0 || len > IPC_FRAME_MAX)
		return -EMSGSIZE;
	if (evbuffer_get_length(in) < (size_t)len + 4)
		return 0;
	p = evbuffer_pullup(in, (ssize_t)len + 4);
	if (p == NULL)
		return -ENOMEM;
	*env = ar__envelope__unpack(NULL, len, p + 4);
	evbuffer_drain(in, (size_t)len + 4);
	return *env != NULL ? 1 : -EBADMSG;
}

static void
ipc_chan_fail(struct ipc_chan *ch, const char *why)
{
	if (ch->closed)
		return;
	ch->closed = true;
	bufferevent_disable(ch->bev, EV_READ | EV_WRITE);
	if (ch->on_close != NULL)
		ch->on_close(ch, why, ch->arg);
}

static void
ipc_chan_read_cb(struct bufferevent *bev, void *arg)
{
	struct ipc_chan *ch = arg;
	Ar__Envelope	*env;
	int		 rc;

	while (!ch->closed) {
		rc = ipc_frame_decode(bufferevent_get_input(bev), &env);
		if (rc == 0)
			return;
		if (rc == -EMSGSIZE) {
			ipc_chan_fail(ch, "frame length 0 or over 256 KiB");
			return;
		}
		if (rc < 0) {
			ipc_chan_fail(ch, "frame does not unpack");
			return;
		}
		ch->received++;
		if (ch->on_msg != NULL)
			ch->on_msg(ch, env, ch->arg);
		ar__envelope__free_unpacked(env, NULL);
	}
}

static void
ipc_chan_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ipc_chan *ch = arg;

	if (what & BEV_EVENT_EOF)
		ipc_chan_fail(ch, "peer closed the channel");
	else if (what & BEV_EVENT_ERROR)
		ipc_chan_fail(ch, strerror(EVUTIL_SOCKET_ERROR()));
}

struct ipc_chan *
ipc_chan_new(struct event_base *base, int fd, ipc_msg_cb on_msg,
    ipc_close_cb on_close, void *arg)
{
	struct ipc_chan *ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return NULL;
	evutil_make_socket_nonblocking(fd);
	ch->bev = bufferevent_socket_new(base, fd, 0);
	if (ch->bev == NULL) {
		free(ch);
		return NULL;
	}
	ch->fd = fd;
	ch->on_msg = on_msg;
	ch->on_close = on_close;
	ch->arg = arg;
	bufferevent_setcb(ch->bev, ipc_chan_read_cb, NULL, ipc_chan_event_cb,
	    ch);
	bufferevent_enable(ch->bev, EV_READ | EV_WRITE);
	return ch;
}

void
ipc_chan_free(struct ipc_chan *ch)
{
	if (ch == NULL)
		return;
	bufferevent_free(ch->bev);
	close(ch->fd);
	free(ch);
}

int
ipc_chan_fd(const struct ipc_chan *ch)
{
	return ch->fd;
}

int
ipc_chan_send(struct ipc_chan *ch, const Ar__Envelope *env)
{
	int rc;

	if (ch == NULL || ch->closed)
		return -EPIPE;
	rc = ipc_frame_encode(env, bufferevent_get_output(ch->bev));
	if (rc == 0)
		ch->sent++;
	return rc;
}

size_t
ipc_chan_pending(const struct ipc_chan *ch)
{
	return evbuffer_get_length(bufferevent_get_output(ch->bev));
}

uint64_t
ipc_chan_sent(const struct ipc_chan *ch)
{
	return ch->sent;
}

uint64_t
ipc_chan_received(const struct ipc_chan *ch)
{
	return ch->received;
}

int
ipc_send_envelope(struct ipc_chan *ch, const Ar__Envelope *env)
{
	return ipc_chan_send(ch, env);
}

/*
 * Send msg, the message of body_case, in an envelope. The envelope's
 * pointer of that case is found by its field number in the descriptor
 * (the case's value), as protobuf-c itself finds it.
 */
static int
ipc_send_body(struct ipc_chan *ch, Ar__Envelope__BodyCase body_case, void *msg)
{
	Ar__Envelope			env = AR__ENVELOPE__INIT;
	const ProtobufCFieldDescriptor *fd;

	fd = protobuf_c_message_descriptor_get_field(&ar__envelope__descriptor,
	    (unsigned)body_case);
	if (fd == NULL || fd->type != PROTOBUF_C_TYPE_MESSAGE)
		return -EINVAL;
	env.body_case = body_case;
	memcpy((char *)&env + fd->offset, &msg, sizeof(msg));
	return ipc_chan_send(ch, &env);
}

int
ipc_send_hello(struct ipc_chan *ch, Ar__Daemon daemon)
{
	Ar__Hello m = AR__HELLO__INIT;

	m.daemon = daemon;
	m.pid = (uint32_t)getpid();
	m.version = (char *)AR_VERSION;
	return ipc_send_body(ch, AR__ENVELOPE__BODY_HELLO, &m);
}

int
ipc_send_config(struct ipc_chan *ch, uint32_t generation,
    const struct config *cfg, const char *instance_id)
{
	Ar__Config		 m = AR__CONFIG__INIT;
	Ar__ConfigEntry		 ents[CONF__COUNT], *ptrs[CONF__COUNT];
	const struct config_def *defs = config_defs();
	size_t			 n = 0;
	int			 i;

	for (i = 0; i < CONF__COUNT; i++) {
		if (cfg->val[i] == NULL)
			continue;
		ar__config_entry__init(&ents[n]);
		ents[n].key = (char *)defs[i].name;
		ents[n].value = cfg->val[i];
		ptrs[n] = &ents[n];
		n++;
	}
	m.generation = generation;
	m.n_entries = n;
	m.entries = ptrs;
	m.instance_id = (char *)(instance_id != NULL ? instance_id : "");
	return ipc_send_body(ch, AR__ENVELOPE__BODY_CONFIG, &m);
}

int
ipc_send_ready(struct ipc_chan *ch, uint32_t generation)
{
	Ar__Ready m = AR__READY__INIT;

	m.generation = generation;
	return ipc_send_body(ch, AR__ENVELOPE__BODY_READY, &m);
}

int
ipc_send_config_ack(struct ipc_chan *ch, uint32_t generation, bool ok,
    const char *error)
{
	Ar__ConfigAck m = AR__CONFIG_ACK__INIT;

	m.generation = generation;
	m.ok = ok;
	m.error = (char *)(error != NULL ? error : "");
	return ipc_send_body(ch, AR__ENVELOPE__BODY_CONFIG_ACK, &m);
}

int
ipc_send_ping(struct ipc_chan *ch, uint64_t seq)
{
	Ar__Ping m = AR__PING__INIT;

	m.seq = seq;
	return ipc_send_body(ch, AR__ENVELOPE__BODY_PING, &m);
}

int
ipc_send_pong(struct ipc_chan *ch, uint64_t seq, uint64_t store_errors)
{
	Ar__Pong m = AR__PONG__INIT;

	m.seq = seq;
	m.store_errors = store_errors;
	return ipc_send_body(ch, AR__ENVELOPE__BODY_PONG, &m);
}

int
ipc_send_shutdown(struct ipc_chan *ch, uint32_t grace_ms)
{
	Ar__Shutdown m = AR__SHUTDOWN__INIT;

	m.grace_ms = grace_ms;
	return ipc_send_body(ch, AR__ENVELOPE__BODY_SHUTDOWN, &m);
}

int
ipc_send_source_changed(struct ipc_chan *ch, const char *source_id,
    bool removed)
{
	Ar__SourceChanged m = AR__SOURCE_CHANGED__INIT;

	m.source_id = (char *)source_id;
	m.removed = removed;
	return ipc_send_body(ch, AR__ENVELOPE__BODY_SOURCE_CHANGED, &m);
}

int
ipc_send_logs_stored(struct ipc_chan *ch, const char *source_id, uint32_t count)
{
	Ar__LogsStored m = AR__LOGS_STORED__INIT;

	m.source_id = (char *)source_id;
	m.count = count;
	return ipc_send_body(ch, AR__ENVELOPE__BODY_LOGS_STORED, &m);
}

int
ipc_send_batch_stored(struct ipc_chan *ch, const char *source_id,
    const char *batch_id, const char *webhook_id, uint32_t n_logs,
    int64_t created_at, const char *body, size_t body_len,
    const char *body_coll)
{
	Ar__BatchStored m = AR__BATCH_STORED__INIT;

	m.source_id = (char *)source_id;
	m.batch_id = (char *)batch_id;
	m.webhook_id = (char *)webhook_id;
	m.n_logs = n_logs;
	m.created_at = created_at;
	m.body_coll = (char *)(body_coll != NULL ? body_coll : "");
	if (body != NULL && body_len <= IPC_BATCH_BODY_MAX) {
		m.body.data = (uint8_t *)body;
		m.body.len = body_len;
	}
	return ipc_send_body(ch, AR__ENVELOPE__BODY_BATCH_STORED, &m);
}

int
ipc_send_child_status(struct ipc_chan *ch, bool store_ok, const char *detail)
{
	Ar__ChildStatus m = AR__CHILD_STATUS__INIT;

	m.store_ok = store_ok;
	m.detail = (char *)(detail != NULL ? detail : "");
	return ipc_send_body(ch, AR__ENVELOPE__BODY_CHILD_STATUS, &m);
}

int
ipc_config_apply(const Ar__Config *msg, struct config *cfg, char *err,
    size_t errlen)
{
	size_t i;
	int    key;

	config_init(cfg);
	for (i = 0; i < msg->n_entries; i++) {
		key = config_lookup(msg->entries[i]->key);
		if (key < 0) {
			snprintf(err, errlen, "unknown key \"%s\" in Config",
			    msg->entries[i]->key);
			config_clear(cfg);
			return -EINVAL;
		}
		if (config_set(cfg, key, msg->entries[i]->value, err, errlen) !=
		    0) {
			config_clear(cfg);
			return -EINVAL;
		}
	}
	if (msg->instance_id != NULL && *msg->instance_id != '\0')
		config_set(cfg, CONF_INSTANCE_ID, msg->instance_id, err,
		    errlen);
	return 0;
}

const char *
ipc_daemon_name(Ar__Daemon d)
{
	switch (d) {
	case AR__DAEMON__DAEMON_APID:
		return "apid";
	case AR__DAEMON__DAEMON_FETCHERD:
		return "fetcherd";
	case AR__DAEMON__DAEMON_DELIVERD:
		return "deliverd";
	default:
		return "unknown";
	}
}
