/*
 * IPC framing: round trips, split reads, zero and oversize lengths,
 * garbage, unknown oneof cases, each typed sender's envelope.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include <cmocka.h>

#include "lib/ipc/config.h"
#include "lib/ipc/ipc.h"

static struct evbuffer *
frame_of(const Ar__Envelope *env)
{
	struct evbuffer *b = evbuffer_new();

	assert_int_equal(ipc_frame_encode(env, b), 0);
	return b;
}

static void
test_roundtrip(void **state)
{
	Ar__Envelope	 env = AR__ENVELOPE__INIT, *out;
	Ar__LogsStored	 m = AR__LOGS_STORED__INIT;
	struct evbuffer *b;

	m.source_id = "5b1f0b8e-0000-4000-8000-000000000001";
	m.count = 1234;
	env.body_case = AR__ENVELOPE__BODY_LOGS_STORED;
	env.logs_stored = &m;
	b = frame_of(&env);
	assert_int_equal(ipc_frame_decode(b, &out), 1);
	assert_int_equal(out->body_case, AR__ENVELOPE__BODY_LOGS_STORED);
	assert_string_equal(out->logs_stored->source_id, m.source_id);
	assert_int_equal(out->logs_stored->count, 1234);
	assert_int_equal(evbuffer_get_length(b), 0);
	ar__envelope__free_unpacked(out, NULL);
	evbuffer_free(b);
}

/* Feed a frame one byte at a time: 0 until the last byte, then 1. */
static void
test_split_reads(void **state)
{
	Ar__Envelope	 env = AR__ENVELOPE__INIT, *out;
	Ar__Ping	 m = AR__PING__INIT;
	struct evbuffer *whole, *in = evbuffer_new();
	uint8_t		 byte;
	size_t		 n, i;

	m.seq = 0xdeadbeefULL;
	env.body_case = AR__ENVELOPE__BODY_PING;
	env.ping = &m;
	whole = frame_of(&env);
	/* Two frames back to back. */
	assert_int_equal(ipc_frame_encode(&env, whole), 0);
	n = evbuffer_get_length(whole);
	for (i = 0; i < n / 2 - 1; i++) {
		evbuffer_remove(whole, &byte, 1);
		evbuffer_add(in, &byte, 1);
		assert_int_equal(ipc_frame_decode(in, &out), 0);
	}
	evbuffer_remove(whole, &byte, 1);
	evbuffer_add(in, &byte, 1);
	assert_int_equal(ipc_frame_decode(in, &out), 1);
	assert_int_equal(out->ping->seq, 0xdeadbeefULL);
	ar__envelope__free_unpacked(out, NULL);
	evbuffer_add_buffer(in, whole);
	assert_int_equal(ipc_frame_decode(in, &out), 1);
	ar__envelope__free_unpacked(out, NULL);
	assert_int_equal(ipc_frame_decode(in, &out), 0);
	evbuffer_free(whole);
	evbuffer_free(in);
}

static void
test_zero_and_oversize(void **state)
{
	struct evbuffer *b = evbuffer_new();
	Ar__Envelope	*out;
	uint32_t	 len = 0;

	evbuffer_add(b, &len, 4);
	assert_int_equal(ipc_frame_decode(b, &out), -EMSGSIZE);
	evbuffer_drain(b, evbuffer_get_length(b));
	len = htonl(IPC_FRAME_MAX + 1);
	evbuffer_add(b, &len, 4);
	assert_int_equal(ipc_frame_decode(b, &out), -EMSGSIZE);
	/* The largest allowed length waits for its bytes. */
	evbuffer_drain(b, evbuffer_get_length(b));
	len = htonl(IPC_FRAME_MAX);
	evbuffer_add(b, &len, 4);
	assert_int_equal(ipc_frame_decode(b, &out), 0);
	evbuffer_free(b);
}

static void
test_garbage(void **state)
{
	struct evbuffer *b = evbuffer_new();
	Ar__Envelope	*out;
	uint8_t		 junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x07 };
	uint32_t	 len = htonl(sizeof(junk));

	evbuffer_add(b, &len, 4);
	evbuffer_add(b, junk, sizeof(junk));
	assert_int_equal(ipc_frame_decode(b, &out), -EBADMSG);
	assert_null(out);
	evbuffer_free(b);
}

/* A field number we do not know (99) unpacks to body NOT_SET: dropped. */
static void
test_unknown_case(void **state)
{
	struct evbuffer *b = evbuffer_new();
	Ar__Envelope	*out;
	/* Field 99, wire type 2, length 0: tag 794 as a varint. */
	uint8_t	 unk[] = { 0x9a, 0x06, 0x00 };
	uint32_t len = htonl(sizeof(unk));

	evbuffer_add(b, &len, 4);
	evbuffer_add(b, unk, sizeof(unk));
	assert_int_equal(ipc_frame_decode(b, &out), 1);
	assert_int_equal(out->body_case, AR__ENVELOPE__BODY__NOT_SET);
	ar__envelope__free_unpacked(out, NULL);
	evbuffer_free(b);
}

/* A Config frame rebuilds the same configuration; bad keys are refused. */
static void
test_config_message(void **state)
{
	Ar__ConfigEntry e1 = AR__CONFIG_ENTRY__INIT,
			e2 = AR__CONFIG_ENTRY__INIT;
	Ar__ConfigEntry *ents[2] = { &e1, &e2 };
	Ar__Config	 m = AR__CONFIG__INIT;
	struct config	 c;
	char		 err[256];

	e1.key = "fetch_overlap";
	e1.value = "120";
	e2.key = "api_token";
	e2.value = "0123456789abcdef0123";
	m.n_entries = 2;
	m.entries = ents;
	m.instance_id = "host-a";
	assert_int_equal(ipc_config_apply(&m, &c, err, sizeof(err)), 0);
	assert_int_equal(config_int(&c, CONF_FETCH_OVERLAP), 120);
	assert_string_equal(config_str(&c, CONF_INSTANCE_ID), "host-a");
	assert_string_equal(config_str(&c, CONF_MONGODB_DATABASE),
	    "auditrelay");
	config_clear(&c);
	e1.key = "nope";
	assert_int_equal(ipc_config_apply(&m, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nope"));
}

/* A channel on one end of a socketpair, its frames read at the other. */
struct sender {
	struct event_base *base;
	struct ipc_chan	  *ch;
	int		   fd; /* the other end */
	struct evbuffer	  *in;
	Ar__Envelope	  *last;
};

/*
 * Loop until the channel has written all it queued; then the next frame
 * at the other end, which must be of body_case (the previous one freed).
 */
static Ar__Envelope *
sent(struct sender *t, Ar__Envelope__BodyCase body_case)
{
	int i, rc;

	ar__envelope__free_unpacked(t->last, NULL);
	t->last = NULL;
	for (i = 0; i < 1000 && ipc_chan_pending(t->ch) > 0; i++)
		event_base_loop(t->base, EVLOOP_NONBLOCK);
	assert_int_equal(ipc_chan_pending(t->ch), 0);
	while ((rc = ipc_frame_decode(t->in, &t->last)) == 0)
		assert_true(evbuffer_read(t->in, t->fd, 65536) > 0);
	assert_int_equal(rc, 1);
	assert_int_equal(t->last->body_case, body_case);
	return t->last;
}

/* Every typed sender puts its message under its own case of the envelope. */
static void
test_typed_senders(void **state)
{
	struct sender	 t;
	struct ipc_chan *ch;
	struct config	 cfg;
	Ar__Envelope	*e;
	char		 err[256];
	int		 sv[2];

	memset(&t, 0, sizeof(t));
	assert_non_null(t.in = evbuffer_new());
	assert_non_null(t.base = event_base_new());
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_non_null(
	    ch = t.ch = ipc_chan_new(t.base, sv[0], NULL, NULL, NULL));
	t.fd = sv[1];
	config_init(&cfg);
	assert_int_equal(
	    config_set(&cfg, CONF_FETCH_OVERLAP, "120", err, sizeof(err)), 0);

	assert_int_equal(ipc_send_hello(ch, AR__DAEMON__DAEMON_FETCHERD), 0);
	e = sent(&t, AR__ENVELOPE__BODY_HELLO);
	assert_int_equal(e->hello->daemon, AR__DAEMON__DAEMON_FETCHERD);
	assert_int_equal(e->hello->pid, (uint32_t)getpid());
	assert_int_equal(ipc_send_config(ch, 7, &cfg, "host-a"), 0);
	e = sent(&t, AR__ENVELOPE__BODY_CONFIG);
	assert_int_equal(e->config->generation, 7);
	assert_string_equal(e->config->instance_id, "host-a");
	assert_true(e->config->n_entries > 0);
	assert_int_equal(ipc_send_ready(ch, 8), 0);
	e = sent(&t, AR__ENVELOPE__BODY_READY);
	assert_int_equal(e->ready->generation, 8);
	assert_int_equal(ipc_send_config_ack(ch, 9, false, "bad"), 0);
	e = sent(&t, AR__ENVELOPE__BODY_CONFIG_ACK);
	assert_int_equal(e->config_ack->generation, 9);
	assert_false(e->config_ack->ok);
	assert_string_equal(e->config_ack->error, "bad");
	assert_int_equal(ipc_send_ping(ch, 10), 0);
	e = sent(&t, AR__ENVELOPE__BODY_PING);
	assert_int_equal(e->ping->seq, 10);
	assert_int_equal(ipc_send_pong(ch, 11, 3), 0);
	e = sent(&t, AR__ENVELOPE__BODY_PONG);
	assert_int_equal(e->pong->seq, 11);
	assert_int_equal(e->pong->store_errors, 3);
	assert_int_equal(ipc_send_shutdown(ch, 1500), 0);
	e = sent(&t, AR__ENVELOPE__BODY_SHUTDOWN);
	assert_int_equal(e->shutdown->grace_ms, 1500);
	assert_int_equal(ipc_send_source_changed(ch, "s1", true), 0);
	e = sent(&t, AR__ENVELOPE__BODY_SOURCE_CHANGED);
	assert_string_equal(e->source_changed->source_id, "s1");
	assert_true(e->source_changed->removed);
	assert_int_equal(ipc_send_logs_stored(ch, "s2", 12), 0);
	e = sent(&t, AR__ENVELOPE__BODY_LOGS_STORED);
	assert_string_equal(e->logs_stored->source_id, "s2");
	assert_int_equal(e->logs_stored->count, 12);
	assert_int_equal(ipc_send_batch_stored(ch, "s3", "b1", "w1", 13, 14,
			     "{}", 2, "bodies_202612020930"),
	    0);
	e = sent(&t, AR__ENVELOPE__BODY_BATCH_STORED);
	assert_string_equal(e->batch_stored->batch_id, "b1");
	assert_string_equal(e->batch_stored->webhook_id, "w1");
	assert_int_equal(e->batch_stored->n_logs, 13);
	assert_int_equal(e->batch_stored->created_at, 14);
	assert_int_equal(e->batch_stored->body.len, 2);
	assert_string_equal(e->batch_stored->body_coll, "bodies_202612020930");
	assert_int_equal(ipc_send_child_status(ch, true, NULL), 0);
	e = sent(&t, AR__ENVELOPE__BODY_CHILD_STATUS);
	assert_true(e->child_status->store_ok);
	assert_string_equal(e->child_status->detail, "");

	ar__envelope__free_unpacked(t.last, NULL);
	config_clear(&cfg);
	ipc_chan_free(ch);
	close(sv[1]);
	evbuffer_free(t.in);
	event_base_free(t.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_split_reads),
		cmocka_unit_test(test_zero_and_oversize),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_unknown_case),
		cmocka_unit_test(test_config_message),
		cmocka_unit_test(test_typed_senders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
