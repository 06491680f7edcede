/* llm.h — an optional LLM that writes the text of alerts: the writer for explain_with().
 *
 * Two kinds of service are spoken to over HTTP(S) with libcurl:
 *   openai   any OpenAI-compatible chat-completions endpoint (OpenAI itself, or a local
 *            llama.cpp / vLLM / Ollama server, so that no data leaves the site):
 *              POST {url}/chat/completions   Authorization: Bearer <key> (only when set)
 *   gemini   Google's Gemini API (ai.google.dev/api/generate-content):
 *              POST {url}/models/{model}:generateContent   x-goog-api-key: <key>
 * The prompt holds only the alert's context (device, place, metric, kind, severity, values,
 * limit, normal range, trend, anomaly score, related readings, times) and the template's
 * draft: never a configuration value, token, password or URL. The model answers one JSON
 * object {"title","description","action","short"}; fences or text around it are tolerated,
 * a field that does not fit its buffer or fails explain_check() rejects the whole answer.
 *
 * Promises: llm_write() returns within its timeout (plus a few milliseconds: the whole
 * request is bounded by libcurl's timeout, connecting included) and fails on anything but a
 * usable answer, so explain_with() keeps the template text. The API key goes only into its
 * header, never into a URL or a body, and every error text is scrubbed of it. Plain http is
 * refused when a key is set and the host is not loopback. Docs: docs/LLM.md.
 *
 * Threads: one writer per thread (it owns a libcurl handle, and with it the connection to
 * the service); a writer is not thread-safe. The configuration is copied at creation. */
#ifndef CANARY_NOTIFY_LLM_H
#define CANARY_NOTIFY_LLM_H

#include "core/config.h"
#include "notify/explain.h"

#include <stdbool.h>
#include <stddef.h>

#define LLM_OPENAI_DEFAULT_URL "https://api.openai.com/v1"
#define LLM_GEMINI_DEFAULT_URL "https://generativelanguage.googleapis.com/v1beta"
#define LLM_DEFAULT_TIMEOUT_MS 4000u
#define LLM_MAX_TOKENS         800 /* the four fields fit in about 600 tokens */

struct llm_writer;

/* Creates a writer from cfg->llm. *out = NULL and 0 when cfg->llm.provider is "off".
 * Returns 0, CANARY_EINVAL (an unknown provider, no model, a URL that is not http(s) or has
 * a query, an API key over plain http to a host that is not loopback, libcurl that cannot
 * be initialised; the message in err names the key and never holds the API key), or
 * CANARY_ENOMEM. Free with llm_writer_free(). */
int llm_writer_new(struct llm_writer **out, const struct canary_config *cfg, char *err,
                   size_t errlen);

/* Frees the writer and closes its connection. NULL is fine. */
void llm_writer_free(struct llm_writer *w);

/* An explain_writer_fn: arg is the struct llm_writer *. Asks the LLM for the text of the
 * alert (all_clear: of its all-clear) described by ctx, with the template's draft as a
 * reference. Returns 0 with *out filled (source EXPLAIN_SOURCE_WRITER, explain_check() true),
 * or non-zero on any failure — CANARY_EIO for the network, a timeout or an HTTP error,
 * CANARY_EINVAL for an answer that is not usable, CANARY_ENOMEM — with *out unspecified and
 * the reason in llm_writer_last_error(). Never blocks longer than timeout_ms (0: the
 * configured llm.timeout_ms) plus a few milliseconds. Keeps no pointer into ctx. */
int llm_write(void *arg, const struct explain_context *ctx, bool all_clear,
              const struct explanation *draft, struct explanation *out, unsigned timeout_ms);

/* The last failure as one line without secrets ("llm openai http://127.0.0.1:8081: timed
 * out after 4000 ms"), for the caller's log; "" after a success. Valid until the next call. */
const char *llm_writer_last_error(const struct llm_writer *w);

#endif
