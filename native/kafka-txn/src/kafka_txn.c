/*
 * kafka_txn: the syncer's transactional Kafka producer, a thin Node-API binding over librdkafka's
 * public C API (the librdkafka.so.1 built by @confluentinc/kafka-javascript at npm ci).
 *
 * Why: through the JavaScript bindings every record costs a native call with one V8 object per
 * header and one JavaScript object per delivery report (docs/sync.md "The producer path"). Here a
 * whole part of a page is produced in one call: keys, partitions (Kafka's murmur2), headers and
 * the record are built in C, and delivery reports are counted in C per topic-partition. JavaScript
 * gets one small summary per transaction.
 *
 * Exports (all take the handle returned by create()):
 *   create({config, topics, kinds, keyPrefix, valuePrefix, headers, group}) -> handle
 *   init(h, timeoutMs) -> Promise            rd_kafka_init_transactions (fences the old session)
 *   begin(h)                                 rd_kafka_begin_transaction; resets the counters
 *   producePacked(h, packed, count, limit, maxBytes, refused) -> [rows, last sequence, payload chars]
 *   decodePacked(keyPrefix, valuePrefix, packed) -> the records producePacked would build (tests)
 *   sendOffsets(h, topic, offset, metadata, timeoutMs) -> Promise
 *   commit(h, timeoutMs) -> Promise<Delivered[]>   after every delivery report of the transaction
 *   abort(h, timeoutMs) -> Promise
 *   close(h) -> Promise                      stops the poll thread, rd_kafka_destroy
 * Errors are JavaScript Errors with code, retriable, abortable (txn_requires_abort) and fatal.
 */
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>

#include "rdkafka.h"

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      throw_last(env, #call);                                                                      \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

/* Sequences per record: the opaque of a record is (epoch << SLOT_BITS) | slot, no allocation. */
#define SLOT_BITS 20
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define EPOCH_MASK 0x7ffu

typedef struct {
  int64_t count; /* records produced in this transaction (main thread) */
  int64_t first_seq;
  int64_t last_seq;
  int64_t delivered; /* under mu */
  int64_t offset;    /* lowest delivered offset, under mu */
} slot_t;

typedef struct {
  char *name;
  rd_kafka_topic_t *rkt;
  int partitions;
  int slot0;
} topic_t;

typedef struct {
  char *kind;
  size_t len;
  int topic;
} kind_t;

typedef struct {
  char *name;
  char *value;
  size_t len;
} header_t;

typedef struct {
  rd_kafka_t *rk;
  topic_t *topics;
  int ntopics;
  kind_t *kinds;
  int nkinds;
  slot_t *slots;
  int nslots;
  int *order; /* slots used in this transaction, in order of first use */
  int norder;
  header_t *headers; /* constant headers; `seq` and `kind` follow per record */
  int nheaders;
  int with_headers;
  size_t fixed_header_bytes;
  char *key_prefix;
  size_t key_prefix_len;
  char *value_prefix; /* the record value up to the sequence number (RecordEncoder.valuePrefix) */
  size_t value_prefix_len;
  char *packed; /* producePacked's input, UTF-8 (main thread) */
  size_t packed_cap;
  rd_kafka_consumer_group_metadata_t *cgmd;
  pthread_t poller;
  int poller_started;
  volatile int stop;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint32_t epoch;     /* under mu */
  int64_t expected;   /* under mu */
  int64_t delivered;  /* under mu */
  int64_t failed;     /* under mu */
  rd_kafka_resp_err_t first_err;
  char first_errstr[256];
  char *scratch; /* the record key and value being built (main thread) */
  size_t scratch_cap;
  int busy;   /* async operations in flight, under mu */
  int closed; /* rd_kafka_destroy done or started */
} producer_t;

static void throw_last(napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  char msg[512];
  snprintf(msg, sizeof msg, "kafka_txn: %s failed: %s", what,
           info && info->error_message ? info->error_message : "?");
  napi_throw_error(env, NULL, msg);
}

/* A JavaScript Error from librdkafka's error: message "<string> (code N)", code, retriable, abortable, fatal. */
static napi_value make_error(napi_env env, rd_kafka_resp_err_t code, const char *text, int retriable,
                             int abortable, int fatal) {
  char msg[600];
  snprintf(msg, sizeof msg, "%s (code %d)", text && *text ? text : rd_kafka_err2str(code), (int)code);
  napi_value m, e, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_int32(env, (int32_t)code, &v);
  napi_set_named_property(env, e, "code", v);
  napi_create_string_utf8(env, rd_kafka_err2name(code), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "codeName", v);
  napi_get_boolean(env, retriable != 0, &v);
  napi_set_named_property(env, e, "retriable", v);
  napi_get_boolean(env, abortable != 0, &v);
  napi_set_named_property(env, e, "abortable", v);
  napi_get_boolean(env, fatal != 0, &v);
  napi_set_named_property(env, e, "fatal", v);
  return e;
}

static napi_value error_of(napi_env env, rd_kafka_error_t *err) {
  return make_error(env, rd_kafka_error_code(err), rd_kafka_error_string(err), rd_kafka_error_is_retriable(err),
                    rd_kafka_error_txn_requires_abort(err), rd_kafka_error_is_fatal(err));
}

/* Kafka's murmur2 (Java's Utils.murmur2, librdkafka's murmur2_random partitioner). */
static int32_t murmur2(const unsigned char *data, size_t len) {
  const uint32_t m = 0x5bd1e995;
  uint32_t h = 0x9747b28c ^ (uint32_t)len;
  size_t i = 0;
  for (; i + 4 <= len; i += 4) {
    uint32_t k = (uint32_t)data[i] | ((uint32_t)data[i + 1] << 8) | ((uint32_t)data[i + 2] << 16) |
                 ((uint32_t)data[i + 3] << 24);
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (len & 3) {
    case 3: h ^= (uint32_t)data[i + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)data[i + 1] << 8;  /* fall through */
    case 1:
      h ^= (uint32_t)data[i];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return (int32_t)h;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
  (void)rk;
  producer_t *p = (producer_t *)opaque;
  uintptr_t o = (uintptr_t)msg->_private;
  pthread_mutex_lock(&p->mu);
  if (((o >> SLOT_BITS) & EPOCH_MASK) == (p->epoch & EPOCH_MASK)) {
    if (msg->err) {
      p->failed++;
      if (!p->first_err) {
        p->first_err = msg->err;
        snprintf(p->first_errstr, sizeof p->first_errstr, "delivery failed: %s", rd_kafka_err2str(msg->err));
      }
    } else {
      slot_t *s = &p->slots[o & SLOT_MASK];
      s->delivered++;
      if (msg->offset < s->offset) s->offset = msg->offset;
      p->delivered++;
    }
    if (p->delivered + p->failed >= p->expected) pthread_cond_broadcast(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
}

/* Serves delivery reports (and librdkafka's other callbacks) off the JavaScript thread. */
static void *poll_main(void *arg) {
  producer_t *p = (producer_t *)arg;
  while (!p->stop) rd_kafka_poll(p->rk, 100);
  return NULL;
}

static void producer_free(producer_t *p) {
  if (!p) return;
  for (int i = 0; i < p->ntopics; i++) free(p->topics[i].name);
  for (int i = 0; i < p->nkinds; i++) free(p->kinds[i].kind);
  for (int i = 0; i < p->nheaders; i++) {
    free(p->headers[i].name);
    free(p->headers[i].value);
  }
  free(p->topics);
  free(p->kinds);
  free(p->headers);
  free(p->slots);
  free(p->order);
  free(p->key_prefix);
  free(p->scratch);
  free(p->value_prefix);
  free(p->packed);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

/* Stops the poll thread, destroys the topic handles and the client. Blocking. */
static void producer_shutdown(producer_t *p) {
  if (p->closed) return;
  p->closed = 1;
  p->stop = 1;
  if (p->poller_started) pthread_join(p->poller, NULL);
  p->poller_started = 0;
  for (int i = 0; i < p->ntopics; i++)
    if (p->topics[i].rkt) rd_kafka_topic_destroy(p->topics[i].rkt);
  if (p->cgmd) rd_kafka_consumer_group_metadata_destroy(p->cgmd);
  p->cgmd = NULL;
  if (p->rk) rd_kafka_destroy(p->rk);
  p->rk = NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  producer_t *p = (producer_t *)data;
  producer_shutdown(p);
  producer_free(p);
}

static char *dup_string(napi_env env, napi_value v, size_t *len_out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = (char *)malloc(len + 1);
  if (!s) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (len_out) *len_out = len;
  return s;
}

static producer_t *unwrap(napi_env env, napi_value h) {
  void *data = NULL;
  if (napi_get_value_external(env, h, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "kafka_txn: not a producer handle");
    return NULL;
  }
  producer_t *p = (producer_t *)data;
  /* stop is set by close() on this thread before its work is queued: nothing starts after a close. */
  if (p->closed || p->stop) {
    napi_throw(env, make_error(env, RD_KAFKA_RESP_ERR__DESTROY, "producer closed", 0, 0, 0));
    return NULL;
  }
  return p;
}

static napi_value get_named(napi_env env, napi_value obj, const char *name) {
  napi_value v = NULL;
  napi_get_named_property(env, obj, name, &v);
  return v;
}

static uint32_t array_length(napi_env env, napi_value arr) {
  uint32_t n = 0;
  bool is = false;
  if (arr && napi_is_array(env, arr, &is) == napi_ok && is) napi_get_array_length(env, arr, &n);
  return n;
}

/* create({config: {k: v}, topics: [[name, partitions]], kinds: [[kind, topicIndex]], keyPrefix, valuePrefix, headers: [[name, value]] | null, group}) */
static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "kafka_txn.create: options expected");
    return NULL;
  }
  napi_value o = argv[0];
  producer_t *p = (producer_t *)calloc(1, sizeof *p);
  if (!p) {
    napi_throw_error(env, NULL, "kafka_txn: out of memory");
    return NULL;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  char errstr[512];

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  napi_value cfg = get_named(env, o, "config"), keys;
  CHECK(napi_get_property_names(env, cfg, &keys));
  uint32_t nkeys = array_length(env, keys);
  for (uint32_t i = 0; i < nkeys; i++) {
    napi_value k, v, vs;
    napi_get_element(env, keys, i, &k);
    napi_get_property(env, cfg, k, &v);
    napi_coerce_to_string(env, v, &vs);
    char *ks = dup_string(env, k, NULL), *val = dup_string(env, vs, NULL);
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, ks, val, errstr, sizeof errstr);
    free(ks);
    free(val);
    if (r != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      producer_free(p);
      napi_throw(env, make_error(env, RD_KAFKA_RESP_ERR__INVALID_ARG, errstr, 0, 0, 0));
      return NULL;
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
  rd_kafka_conf_set_opaque(conf, p);

  napi_value topics = get_named(env, o, "topics");
  p->ntopics = (int)array_length(env, topics);
  p->topics = (topic_t *)calloc(p->ntopics ? p->ntopics : 1, sizeof(topic_t));
  for (int i = 0; i < p->ntopics; i++) {
    napi_value t, name, n;
    napi_get_element(env, topics, i, &t);
    napi_get_element(env, t, 0, &name);
    napi_get_element(env, t, 1, &n);
    int32_t parts = 1;
    napi_get_value_int32(env, n, &parts);
    p->topics[i].name = dup_string(env, name, NULL);
    p->topics[i].partitions = parts > 0 ? parts : 1;
    p->topics[i].slot0 = p->nslots;
    p->nslots += p->topics[i].partitions;
  }
  if (p->nslots >= (int)SLOT_MASK) {
    rd_kafka_conf_destroy(conf);
    producer_free(p);
    napi_throw_error(env, NULL, "kafka_txn: too many partitions");
    return NULL;
  }
  p->slots = (slot_t *)calloc(p->nslots ? p->nslots : 1, sizeof(slot_t));
  p->order = (int *)calloc(p->nslots ? p->nslots : 1, sizeof(int));

  napi_value kinds = get_named(env, o, "kinds");
  p->nkinds = (int)array_length(env, kinds);
  p->kinds = (kind_t *)calloc(p->nkinds ? p->nkinds : 1, sizeof(kind_t));
  for (int i = 0; i < p->nkinds; i++) {
    napi_value k, name, t;
    napi_get_element(env, kinds, i, &k);
    napi_get_element(env, k, 0, &name);
    napi_get_element(env, k, 1, &t);
    p->kinds[i].kind = dup_string(env, name, &p->kinds[i].len);
    napi_get_value_int32(env, t, &p->kinds[i].topic);
    if (p->kinds[i].topic < 0 || p->kinds[i].topic >= p->ntopics) p->kinds[i].topic = 0;
  }

  p->key_prefix = dup_string(env, get_named(env, o, "keyPrefix"), &p->key_prefix_len);
  if (!p->key_prefix) {
    p->key_prefix = strdup("");
    p->key_prefix_len = 0;
  }

  p->value_prefix = dup_string(env, get_named(env, o, "valuePrefix"), &p->value_prefix_len);
  if (!p->value_prefix) {
    p->value_prefix = strdup("");
    p->value_prefix_len = 0;
  }

  napi_value headers = get_named(env, o, "headers");
  bool is_arr = false;
  napi_is_array(env, headers, &is_arr);
  p->with_headers = is_arr;
  p->fixed_header_bytes = strlen("seq") + strlen("kind");
  if (is_arr) {
    p->nheaders = (int)array_length(env, headers);
    p->headers = (header_t *)calloc(p->nheaders ? p->nheaders : 1, sizeof(header_t));
    for (int i = 0; i < p->nheaders; i++) {
      napi_value h, name, value;
      size_t nlen = 0;
      napi_get_element(env, headers, i, &h);
      napi_get_element(env, h, 0, &name);
      napi_get_element(env, h, 1, &value);
      p->headers[i].name = dup_string(env, name, &nlen);
      p->headers[i].value = dup_string(env, value, &p->headers[i].len);
      p->fixed_header_bytes += nlen + p->headers[i].len;
    }
  }

  char *group = dup_string(env, get_named(env, o, "group"), NULL);
  p->cgmd = rd_kafka_consumer_group_metadata_new(group ? group : "");
  free(group);

  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!p->rk) {
    rd_kafka_conf_destroy(conf);
    rd_kafka_consumer_group_metadata_destroy(p->cgmd);
    producer_free(p);
    napi_throw(env, make_error(env, RD_KAFKA_RESP_ERR__INVALID_ARG, errstr, 0, 0, 0));
    return NULL;
  }
  for (int i = 0; i < p->ntopics; i++) p->topics[i].rkt = rd_kafka_topic_new(p->rk, p->topics[i].name, NULL);
  if (pthread_create(&p->poller, NULL, poll_main, p) == 0) p->poller_started = 1;

  napi_value handle;
  if (napi_create_external(env, p, finalize, NULL, &handle) != napi_ok) {
    producer_shutdown(p);
    producer_free(p);
    throw_last(env, "napi_create_external");
    return NULL;
  }
  return handle;
}

/* ---- async operations: init, sendOffsets, commit, abort, close ---- */

enum op_kind { OP_INIT, OP_SEND_OFFSETS, OP_COMMIT, OP_ABORT, OP_CLOSE };

typedef struct {
  int topic;
  int32_t partition;
  int64_t offset;
  int64_t first_seq;
  int64_t last_seq;
  int64_t count;
  int64_t delivered;
} summary_t;

typedef struct {
  enum op_kind kind;
  producer_t *p;
  napi_ref handle_ref;
  napi_async_work work;
  napi_deferred deferred;
  int timeout_ms;
  char *topic;
  int64_t offset;
  char *metadata;
  size_t metadata_len;
  rd_kafka_error_t *error;
  /* commit: the delivery summary */
  summary_t *summary;
  int nsummary;
  int64_t expected, delivered, failed;
  rd_kafka_resp_err_t dr_err;
  char dr_errstr[256];
} work_t;

static void wait_reports(producer_t *p, work_t *w) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += w->timeout_ms / 1000;
  until.tv_nsec += (long)(w->timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&p->mu);
  while (p->delivered + p->failed < p->expected)
    if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT) break;
  w->expected = p->expected;
  w->delivered = p->delivered;
  w->failed = p->failed;
  w->dr_err = p->first_err;
  memcpy(w->dr_errstr, p->first_errstr, sizeof w->dr_errstr);
  w->nsummary = p->norder;
  w->summary = (summary_t *)calloc(p->norder ? p->norder : 1, sizeof(summary_t));
  for (int i = 0; i < p->norder; i++) {
    int s = p->order[i];
    int t = 0;
    while (t + 1 < p->ntopics && p->topics[t + 1].slot0 <= s) t++;
    summary_t *o = &w->summary[i];
    o->topic = t;
    o->partition = s - p->topics[t].slot0;
    o->offset = p->slots[s].offset;
    o->first_seq = p->slots[s].first_seq;
    o->last_seq = p->slots[s].last_seq;
    o->count = p->slots[s].count;
    o->delivered = p->slots[s].delivered;
  }
  pthread_mutex_unlock(&p->mu);
}

static void execute(napi_env env, void *data) {
  (void)env;
  work_t *w = (work_t *)data;
  producer_t *p = w->p;
  switch (w->kind) {
    case OP_INIT:
      w->error = rd_kafka_init_transactions(p->rk, w->timeout_ms);
      break;
    case OP_SEND_OFFSETS: {
      rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, w->topic, 0);
      tp->offset = w->offset;
      /* The metadata exactly as given: no trailing NUL. */
      tp->metadata = malloc(w->metadata_len ? w->metadata_len : 1);
      memcpy(tp->metadata, w->metadata, w->metadata_len);
      tp->metadata_size = w->metadata_len;
      w->error = rd_kafka_send_offsets_to_transaction(p->rk, l, p->cgmd, w->timeout_ms);
      rd_kafka_topic_partition_list_destroy(l);
      break;
    }
    case OP_COMMIT:
      w->error = rd_kafka_commit_transaction(p->rk, w->timeout_ms);
      if (!w->error) wait_reports(p, w);
      break;
    case OP_ABORT:
      w->error = rd_kafka_abort_transaction(p->rk, w->timeout_ms);
      break;
    case OP_CLOSE:
      /* Waits for the other operations in flight (each has librdkafka's timeout). */
      pthread_mutex_lock(&p->mu);
      while (p->busy > 1) pthread_cond_wait(&p->cv, &p->mu);
      pthread_mutex_unlock(&p->mu);
      producer_shutdown(p);
      break;
  }
  pthread_mutex_lock(&p->mu);
  p->busy--;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static void complete(napi_env env, napi_status status, void *data) {
  work_t *w = (work_t *)data;
  producer_t *p = w->p;
  napi_value result = NULL;
  napi_value error = NULL;
  if (status != napi_ok) {
    error = make_error(env, RD_KAFKA_RESP_ERR__FAIL, "async operation cancelled", 0, 0, 0);
  } else if (w->error) {
    error = error_of(env, w->error);
  } else if (w->kind == OP_COMMIT) {
    if (w->failed > 0) {
      error = make_error(env, w->dr_err, w->dr_errstr, 0, 1, 0);
    } else if (w->delivered < w->expected) {
      char msg[160];
      snprintf(msg, sizeof msg, "delivery reports missing after commit: %lld of %lld", (long long)w->delivered,
               (long long)w->expected);
      error = make_error(env, RD_KAFKA_RESP_ERR__TIMED_OUT, msg, 1, 0, 0);
    } else {
      napi_create_array_with_length(env, w->nsummary, &result);
      for (int i = 0; i < w->nsummary; i++) {
        summary_t *s = &w->summary[i];
        napi_value o, v;
        napi_create_object(env, &o);
        napi_create_string_utf8(env, p->topics[s->topic].name, NAPI_AUTO_LENGTH, &v);
        napi_set_named_property(env, o, "topic", v);
        napi_create_int32(env, s->partition, &v);
        napi_set_named_property(env, o, "partition", v);
        napi_create_double(env, (double)s->offset, &v);
        napi_set_named_property(env, o, "offset", v);
        napi_create_double(env, (double)s->first_seq, &v);
        napi_set_named_property(env, o, "firstSeq", v);
        napi_create_double(env, (double)s->last_seq, &v);
        napi_set_named_property(env, o, "lastSeq", v);
        napi_create_double(env, (double)s->count, &v);
        napi_set_named_property(env, o, "count", v);
        napi_create_double(env, (double)s->delivered, &v);
        napi_set_named_property(env, o, "delivered", v);
        napi_set_element(env, result, i, o);
      }
    }
  }
  if (!result) napi_get_undefined(env, &result);
  if (error)
    napi_reject_deferred(env, w->deferred, error);
  else
    napi_resolve_deferred(env, w->deferred, result);
  if (w->error) rd_kafka_error_destroy(w->error);
  napi_delete_async_work(env, w->work);
  napi_delete_reference(env, w->handle_ref);
  free(w->topic);
  free(w->metadata);
  free(w->summary);
  free(w);
}

static napi_value start_work(napi_env env, napi_value handle, producer_t *p, work_t *w) {
  napi_value promise, name;
  w->p = p;
  CHECK(napi_create_promise(env, &w->deferred, &promise));
  CHECK(napi_create_reference(env, handle, 1, &w->handle_ref));
  CHECK(napi_create_string_utf8(env, "kafka_txn", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, execute, complete, w, &w->work));
  pthread_mutex_lock(&p->mu);
  p->busy++;
  pthread_mutex_unlock(&p->mu);
  CHECK(napi_queue_async_work(env, w->work));
  return promise;
}

static int32_t int_arg(napi_env env, napi_value v, int32_t dflt) {
  int32_t n = dflt;
  if (v && napi_get_value_int32(env, v, &n) != napi_ok) n = dflt;
  return n;
}

static napi_value simple_op(napi_env env, napi_callback_info info, enum op_kind kind) {
  size_t argc = 2;
  napi_value argv[2] = {NULL, NULL};
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  producer_t *p = unwrap(env, argv[0]);
  if (!p) return NULL;
  work_t *w = (work_t *)calloc(1, sizeof *w);
  w->kind = kind;
  w->timeout_ms = int_arg(env, argc > 1 ? argv[1] : NULL, 30000);
  return start_work(env, argv[0], p, w);
}

static napi_value js_init(napi_env env, napi_callback_info info) { return simple_op(env, info, OP_INIT); }
static napi_value js_commit(napi_env env, napi_callback_info info) { return simple_op(env, info, OP_COMMIT); }
static napi_value js_abort(napi_env env, napi_callback_info info) { return simple_op(env, info, OP_ABORT); }

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {NULL};
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  napi_value undef;
  napi_get_undefined(env, &undef);
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || !data) return undef;
  producer_t *p = (producer_t *)data;
  if (p->closed || p->stop) {
    napi_value promise;
    napi_deferred d;
    napi_create_promise(env, &d, &promise);
    napi_resolve_deferred(env, d, undef);
    return promise;
  }
  p->stop = 1; /* no second close */
  work_t *w = (work_t *)calloc(1, sizeof *w);
  w->kind = OP_CLOSE;
  return start_work(env, argv[0], p, w);
}

/* sendOffsets(h, topic, offset, metadata, timeoutMs) */
static napi_value js_send_offsets(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5] = {NULL, NULL, NULL, NULL, NULL};
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  producer_t *p = unwrap(env, argv[0]);
  if (!p) return NULL;
  work_t *w = (work_t *)calloc(1, sizeof *w);
  w->kind = OP_SEND_OFFSETS;
  w->topic = dup_string(env, argv[1], NULL);
  napi_get_value_int64(env, argv[2], &w->offset);
  w->metadata = dup_string(env, argv[3], &w->metadata_len);
  w->timeout_ms = int_arg(env, argv[4], 30000);
  if (!w->topic || !w->metadata) {
    free(w->topic);
    free(w->metadata);
    free(w);
    napi_throw_type_error(env, NULL, "kafka_txn.sendOffsets: topic and metadata must be strings");
    return NULL;
  }
  return start_work(env, argv[0], p, w);
}

/* begin(h): a new transaction; the counters of the previous one are dropped. */
static napi_value js_begin(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {NULL};
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  producer_t *p = unwrap(env, argv[0]);
  if (!p) return NULL;
  pthread_mutex_lock(&p->mu);
  p->epoch++;
  for (int i = 0; i < p->norder; i++) {
    slot_t *s = &p->slots[p->order[i]];
    s->count = s->delivered = 0;
  }
  p->norder = 0;
  p->expected = p->delivered = p->failed = 0;
  p->first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
  p->first_errstr[0] = 0;
  pthread_mutex_unlock(&p->mu);
  rd_kafka_error_t *err = rd_kafka_begin_transaction(p->rk);
  if (err) {
    napi_throw(env, error_of(env, err));
    rd_kafka_error_destroy(err);
    return NULL;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

/* librdkafka's framing of one record, as the syncer counts it (RECORD_OVERHEAD in producer.ts). */
#define RECORD_OVERHEAD 512


/*
 * Queues one record (librdkafka copies it) to the kind's topic, partition murmur2(key), with the
 * constant headers then `seq` and `kind`; counts it in its topic-partition's slot.
 */
static rd_kafka_resp_err_t produce_record(producer_t *p, uint32_t epoch, const kind_t *k, const char *key, size_t keylen,
                                          const void *value, size_t vlen, int64_t ts, int64_t seq, const char *seqbuf,
                                          int seqlen, int32_t *partition_out) {
  const topic_t *t = &p->topics[k->topic];
  int32_t partition = (murmur2((const unsigned char *)key, keylen) & 0x7fffffff) % t->partitions;
  *partition_out = partition;
  int slot = t->slot0 + partition;
  void *opaque = (void *)(uintptr_t)((epoch << SLOT_BITS) | (uint32_t)slot);
  rd_kafka_headers_t *hdrs = NULL;
  if (p->with_headers) {
    hdrs = rd_kafka_headers_new((size_t)p->nheaders + 2);
    for (int j = 0; j < p->nheaders; j++)
      rd_kafka_header_add(hdrs, p->headers[j].name, -1, p->headers[j].value, (ssize_t)p->headers[j].len);
    rd_kafka_header_add(hdrs, "seq", 3, seqbuf, seqlen);
    rd_kafka_header_add(hdrs, "kind", 4, k->kind, (ssize_t)k->len);
  }
  rd_kafka_resp_err_t err;
  for (int tries = 0;; tries++) {
    if (hdrs)
      err = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(t->rkt), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, keylen),
                              RD_KAFKA_V_VALUE((void *)value, vlen), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_HEADERS(hdrs),
                              RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    else
      err = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(t->rkt), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, keylen),
                              RD_KAFKA_V_VALUE((void *)value, vlen), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_OPAQUE(opaque),
                              RD_KAFKA_V_END);
    /* A full local queue drains as librdkafka sends (the poll thread serves the reports). */
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= 3000) break;
    struct timespec ms10 = {0, 10 * 1000000L};
    nanosleep(&ms10, NULL);
  }
  if (err) {
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    return err;
  }
  slot_t *s = &p->slots[slot];
  if (s->count == 0) {
    s->first_seq = seq;
    s->offset = INT64_MAX;
    pthread_mutex_lock(&p->mu);
    s->delivered = 0;
    p->order[p->norder++] = slot;
    pthread_mutex_unlock(&p->mu);
  }
  s->last_seq = seq;
  s->count++;
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static void throw_produce_error(napi_env env, producer_t *p, const kind_t *k, int32_t partition, rd_kafka_resp_err_t err) {
  char errstr[256] = "";
  int fatal = 0;
  rd_kafka_resp_err_t code = err;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    code = rd_kafka_fatal_error(p->rk, errstr, sizeof errstr);
    fatal = 1;
  }
  char msg[400];
  snprintf(msg, sizeof msg, "produce to %s [%d]: %s%s%s", p->topics[k->topic].name, (int)partition, rd_kafka_err2str(err),
           fatal ? ": " : "", errstr);
  napi_throw(env, make_error(env, code, msg, err == RD_KAFKA_RESP_ERR__QUEUE_FULL, !fatal, fatal));
}

static const kind_t *find_kind(const producer_t *p, const char *kind, size_t len) {
  for (int j = 0; j < p->nkinds; j++)
    if (p->kinds[j].len == len && memcmp(p->kinds[j].kind, kind, len) == 0) return &p->kinds[j];
  return NULL;
}

static void ensure_cap(char **buf, size_t *cap, size_t need) {
  if (*cap >= need) return;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  free(*buf);
  *buf = (char *)malloc(n);
  *cap = n;
}

/* Reads a decimal token ending at a space; advances *pos past the space. Returns the token. */
static const char *token(const char *buf, size_t end, size_t *pos, size_t *len) {
  size_t start = *pos, i = start;
  while (i < end && buf[i] != ' ') i++;
  *len = i - start;
  *pos = i < end ? i + 1 : end;
  return buf + start;
}

static int64_t to_int(const char *s, size_t len, int *ok) {
  int64_t v = 0;
  int neg = 0;
  size_t i = 0;
  if (len > 0 && s[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i >= len) *ok = 0;
  for (; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') {
      *ok = 0;
      return 0;
    }
    v = v * 10 + (s[i] - '0');
  }
  return neg ? -v : v;
}

/* One event of a packed part (RecordEncoder.PACKED_SQL), pointing into the packed text. */
typedef struct {
  const char *seq, *kind, *et, *it, *key, *qkey, *payload;
  size_t l_seq, l_kind, l_et, l_it, kl, ql, pl;
  int64_t seqn, pchars;
} packed_row_t;

/* Parses the next event at *pos; 0 on malformed input. */
static int next_row(const char *buf, size_t len, size_t *pos, packed_row_t *r) {
  size_t l_pc, l_kl, l_ql, l_pl;
  r->seq = token(buf, len, pos, &r->l_seq);
  r->kind = token(buf, len, pos, &r->l_kind);
  r->et = token(buf, len, pos, &r->l_et);
  r->it = token(buf, len, pos, &r->l_it);
  const char *t_pc = token(buf, len, pos, &l_pc);
  const char *t_kl = token(buf, len, pos, &l_kl);
  const char *t_ql = token(buf, len, pos, &l_ql);
  const char *t_pl = token(buf, len, pos, &l_pl);
  int ok = 1;
  r->seqn = to_int(r->seq, r->l_seq, &ok);
  r->pchars = to_int(t_pc, l_pc, &ok);
  int64_t kl = to_int(t_kl, l_kl, &ok);
  int64_t ql = to_int(t_ql, l_ql, &ok);
  int64_t pl = to_int(t_pl, l_pl, &ok);
  if (!ok || kl < 0 || ql < 0 || pl < 0 || r->l_seq >= 24 || *pos + (size_t)(kl + ql + pl) > len) return 0;
  r->kl = (size_t)kl;
  r->ql = (size_t)ql;
  r->pl = (size_t)pl;
  r->key = buf + *pos;
  r->qkey = r->key + r->kl;
  r->payload = r->qkey + r->ql;
  *pos += r->kl + r->ql + r->pl;
  return 1;
}

/*
 * Writes key (prefix + event key) and value into p->scratch, the value byte for byte as
 * RecordEncoder.record(): prefix seq ,"kind":"<kind>","key":<quoted>,"event_time":<et>,"ingest_time":<it>,"payload":<payload>}
 */
static void build_record(producer_t *p, const packed_row_t *r, char **key, size_t *keylen, char **value, size_t *vlen) {
  *keylen = p->key_prefix_len + r->kl;
  size_t cap = *keylen + p->value_prefix_len + r->l_seq + r->l_kind + r->ql + r->l_et + r->l_it + r->pl + 64;
  ensure_cap(&p->scratch, &p->scratch_cap, cap);
  char *k = p->scratch;
  memcpy(k, p->key_prefix, p->key_prefix_len);
  memcpy(k + p->key_prefix_len, r->key, r->kl);
  char *v = k + *keylen, *w = v;
#define PUT(src, n)        \
  do {                     \
    memcpy(w, (src), (n)); \
    w += (n);              \
  } while (0)
#define PUTL(lit) PUT(lit, sizeof(lit) - 1)
  PUT(p->value_prefix, p->value_prefix_len);
  PUT(r->seq, r->l_seq);
  PUTL(",\"kind\":\"");
  PUT(r->kind, r->l_kind);
  PUTL("\",\"key\":");
  PUT(r->qkey, r->ql);
  PUTL(",\"event_time\":");
  PUT(r->et, r->l_et);
  PUTL(",\"ingest_time\":");
  PUT(r->it, r->l_it);
  PUTL(",\"payload\":");
  PUT(r->payload, r->pl);
  PUTL("}");
#undef PUT
#undef PUTL
  *key = k;
  *value = v;
  *vlen = (size_t)(w - v);
}

/* The packed text: a Buffer (used in place) or a string (UTF-8 encoded into p->packed). */
static const char *packed_text(napi_env env, producer_t *p, napi_value v, size_t *len) {
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (is_buffer) {
    void *data = NULL;
    napi_get_buffer_info(env, v, &data, len);
    return data ? (const char *)data : "";
  }
  if (napi_get_value_string_utf8(env, v, NULL, 0, len) != napi_ok) {
    napi_throw_type_error(env, NULL, "kafka_txn: the packed part must be a Buffer or a string");
    return NULL;
  }
  ensure_cap(&p->packed, &p->packed_cap, *len + 1);
  napi_get_value_string_utf8(env, v, p->packed, p->packed_cap, len);
  return p->packed;
}

/*
 * producePacked(h, packed, count, limit, maxBytes, refused) -> [rows consumed, last sequence, payload chars produced]
 * `packed` is RecordEncoder.PACKED_SQL's text (`count` events). The record value is built here,
 * byte for byte as RecordEncoder.record() builds it. Stops before the row whose payload would take
 * the part past `maxBytes` payload chars (at least one row). A record larger than `limit` is not
 * produced; [seq, kind, key, event_time, bytes, payload chars] goes to `refused`.
 */
static napi_value js_produce_packed(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  producer_t *p = unwrap(env, argv[0]);
  if (!p) return NULL;
  int64_t count = 0, limit = INT64_MAX;
  double max_bytes = 1e300;
  napi_get_value_int64(env, argv[2], &count);
  if (argv[3]) napi_get_value_int64(env, argv[3], &limit);
  if (argv[4]) napi_get_value_double(env, argv[4], &max_bytes);
  napi_value refused = argv[5];
  uint32_t nrefused = array_length(env, refused);
  size_t len = 0;
  const char *buf = packed_text(env, p, argv[1], &len);
  if (!buf) return NULL;
  uint32_t epoch;
  pthread_mutex_lock(&p->mu);
  epoch = p->epoch & EPOCH_MASK;
  pthread_mutex_unlock(&p->mu);

  size_t pos = 0;
  int64_t rows = 0, produced = 0, last_seq = 0;
  double bytes = 0, taken = 0;
  int failed = 0;
  packed_row_t r;
  while (pos < len && rows < count) {
    if (!next_row(buf, len, &pos, &r)) {
      napi_throw_error(env, NULL, "kafka_txn.producePacked: malformed packed part");
      failed = 1;
      break;
    }
    /* The part ends before the row that would take it past maxBytes of payload (at least one row). */
    if (rows > 0 && taken + (double)r.pchars > max_bytes) break;
    rows++;
    last_seq = r.seqn;
    taken += (double)r.pchars;
    const kind_t *k = find_kind(p, r.kind, r.l_kind);
    if (!k) {
      char msg[128];
      snprintf(msg, sizeof msg, "kafka_txn.producePacked: no topic for event kind \"%.*s\"",
               (int)(r.l_kind < 64 ? r.l_kind : 64), r.kind);
      napi_throw_error(env, NULL, msg);
      failed = 1;
      break;
    }
    char *key, *value;
    size_t keylen, vlen;
    build_record(p, &r, &key, &keylen, &value, &vlen);
    char seqbuf[24];
    memcpy(seqbuf, r.seq, r.l_seq);
    seqbuf[r.l_seq] = 0;
    /* The timestamp: event_time as SQLite wrote it (an integer; a real is truncated). */
    char etbuf[40];
    size_t etn = r.l_et < sizeof etbuf - 1 ? r.l_et : sizeof etbuf - 1;
    memcpy(etbuf, r.et, etn);
    etbuf[etn] = 0;
    int64_t ts = (int64_t)strtod(etbuf, NULL);
    int64_t size = (int64_t)keylen + (int64_t)vlen + RECORD_OVERHEAD +
                   (p->with_headers ? (int64_t)(p->fixed_header_bytes + r.l_seq + k->len) : 0);
    if (size > limit) {
      napi_handle_scope scope;
      napi_open_handle_scope(env, &scope);
      napi_value o, x;
      napi_create_array_with_length(env, 6, &o);
      napi_create_double(env, (double)r.seqn, &x);
      napi_set_element(env, o, 0, x);
      napi_create_string_utf8(env, r.kind, r.l_kind, &x);
      napi_set_element(env, o, 1, x);
      napi_create_string_utf8(env, r.key, r.kl, &x);
      napi_set_element(env, o, 2, x);
      napi_create_double(env, (double)ts, &x);
      napi_set_element(env, o, 3, x);
      napi_create_double(env, (double)size, &x);
      napi_set_element(env, o, 4, x);
      napi_create_double(env, (double)r.pchars, &x);
      napi_set_element(env, o, 5, x);
      napi_set_element(env, refused, nrefused++, o);
      napi_close_handle_scope(env, scope);
      continue;
    }
    int32_t partition = 0;
    rd_kafka_resp_err_t err =
        produce_record(p, epoch, k, key, keylen, value, vlen, ts, r.seqn, seqbuf, (int)r.l_seq, &partition);
    if (err) {
      throw_produce_error(env, p, k, partition, err);
      failed = 1;
      break;
    }
    produced++;
    bytes += (double)r.pchars;
  }
  pthread_mutex_lock(&p->mu);
  p->expected += produced;
  pthread_mutex_unlock(&p->mu);
  if (failed) return NULL;
  napi_value out, x;
  napi_create_array_with_length(env, 3, &out);
  napi_create_double(env, (double)rows, &x);
  napi_set_element(env, out, 0, x);
  napi_create_double(env, (double)last_seq, &x);
  napi_set_element(env, out, 1, x);
  napi_create_double(env, bytes, &x);
  napi_set_element(env, out, 2, x);
  return out;
}

/*
 * decodePacked(keyPrefix, valuePrefix, packed) -> [[seq, key, value Buffer, timestamp]...]: the records
 * producePacked would send, built by the same code (tests compare them with RecordEncoder.record()).
 */
static napi_value js_decode_packed(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3] = {NULL, NULL, NULL};
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  producer_t tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.key_prefix = dup_string(env, argv[0], &tmp.key_prefix_len);
  tmp.value_prefix = dup_string(env, argv[1], &tmp.value_prefix_len);
  size_t len = 0;
  napi_value out = NULL;
  const char *buf = tmp.key_prefix && tmp.value_prefix ? packed_text(env, &tmp, argv[2], &len) : NULL;
  if (buf) {
    napi_create_array(env, &out);
    size_t pos = 0;
    uint32_t i = 0;
    packed_row_t r;
    while (pos < len) {
      if (!next_row(buf, len, &pos, &r)) {
        napi_throw_error(env, NULL, "kafka_txn.decodePacked: malformed packed part");
        out = NULL;
        break;
      }
      char *key, *value;
      size_t keylen, vlen;
      build_record(&tmp, &r, &key, &keylen, &value, &vlen);
      char etbuf[40];
      size_t etn = r.l_et < sizeof etbuf - 1 ? r.l_et : sizeof etbuf - 1;
      memcpy(etbuf, r.et, etn);
      etbuf[etn] = 0;
      napi_value o, x;
      napi_create_array_with_length(env, 4, &o);
      napi_create_double(env, (double)r.seqn, &x);
      napi_set_element(env, o, 0, x);
      napi_create_string_utf8(env, key, keylen, &x);
      napi_set_element(env, o, 1, x);
      napi_create_buffer_copy(env, vlen, value, NULL, &x);
      napi_set_element(env, o, 2, x);
      napi_create_double(env, (double)(int64_t)strtod(etbuf, NULL), &x);
      napi_set_element(env, o, 3, x);
      napi_set_element(env, out, i++, o);
    }
  }
  free(tmp.key_prefix);
  free(tmp.value_prefix);
  free(tmp.packed);
  free(tmp.scratch);
  return out;
}

static napi_value js_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_string_utf8(env, rd_kafka_version_str(), NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value init_module(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
      {"init", NULL, js_init, NULL, NULL, NULL, napi_default, NULL},
      {"begin", NULL, js_begin, NULL, NULL, NULL, napi_default, NULL},
      {"producePacked", NULL, js_produce_packed, NULL, NULL, NULL, napi_default, NULL},
      {"decodePacked", NULL, js_decode_packed, NULL, NULL, NULL, napi_default, NULL},
      {"sendOffsets", NULL, js_send_offsets, NULL, NULL, NULL, napi_default, NULL},
      {"commit", NULL, js_commit, NULL, NULL, NULL, napi_default, NULL},
      {"abort", NULL, js_abort, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"librdkafkaVersion", NULL, js_version, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
