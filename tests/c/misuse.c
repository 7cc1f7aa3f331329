/*
 * misuse.c: the C API under misuse. Every call returns its code and a
 * message; nothing crashes, nothing leaks (run under valgrind by
 * scripts/test.d/20-c.sh).
 *
 *   misuse http://127.0.0.1:PORT CODES_FILE
 *
 * Also runs the whole flow over a host-supplied HTTP callback (a small
 * socket client below), against the same server.
 *
 * The server delivers codes to CODES_FILE (lines `identity<TAB>code`).
 */
#include <passcrow.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int checks, failures;

static const char *last_message(void) {
    static char msg[2048];
    size_t n = 0;
    if (passcrow_error_message(msg, sizeof msg, &n) != PASSCROW_OK) {
        return "(passcrow_error_message failed)";
    }
    return msg;
}

/* `r` must be `want`; a failure must leave a message containing `needle`. */
static void expect_at(int line, const char *expr, passcrow_result r, passcrow_result want,
                      const char *needle) {
    const char *msg = last_message();
    checks++;
    if (r != want) {
        failures++;
        fprintf(stderr, "line %d: %s returned %u, expected %u (%s)\n", line, expr, (unsigned)r,
                (unsigned)want, msg);
        return;
    }
    if (want != PASSCROW_OK && (msg[0] == '\0' || (needle && strstr(msg, needle) == NULL))) {
        failures++;
        fprintf(stderr, "line %d: %s: message \"%s\" lacks \"%s\"\n", line, expr, msg,
                needle ? needle : "(anything)");
    }
}
#define EXPECT(call, want, needle) expect_at(__LINE__, #call, (call), (want), (needle))

static void check_at(int line, const char *what, int ok) {
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "line %d: check failed: %s\n", line, what);
    }
}
#define CHECK(x) check_at(__LINE__, #x, (x))

static int read_code(const char *codes_file, const char *identity, char *code, size_t len) {
    FILE *f = fopen(codes_file, "r");
    char line[512];
    size_t idlen = strlen(identity);
    int found = 0;
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, identity, idlen) == 0 && line[idlen] == '\t') {
            char *c = line + idlen + 1;
            c[strcspn(c, "\r\n")] = '\0';
            if (strlen(c) < len) {
                strcpy(code, c);
                found = 1;
            }
        }
    }
    fclose(f);
    return found;
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

/* Every entry point with NULL where a pointer is required. */
static void null_arguments(void) {
    passcrow_client *c = NULL;
    passcrow_policy *p = NULL;
    passcrow_pack *pk = NULL;
    passcrow_verification *v = NULL;
    passcrow_pack_list *l = NULL;
    passcrow_hint h;
    passcrow_pack_info info;
    uint8_t *bytes = NULL;
    size_t n = 0, n2 = 0, n3 = 0;
    uint32_t u = 0, u2 = 0;
    int64_t t = 0;
    bool b = false;
    const char *one[1] = {NULL};

    EXPECT(passcrow_client_new(NULL, "/tmp", &c), PASSCROW_NULL_ARGUMENT, "config_dir");
    EXPECT(passcrow_client_new("/tmp", NULL, &c), PASSCROW_NULL_ARGUMENT, "data_dir");
    EXPECT(passcrow_client_new("/tmp", "/tmp", NULL), PASSCROW_NULL_ARGUMENT, "out");
    EXPECT(passcrow_client_new_with_http("/tmp", "/tmp", NULL, NULL, &c), PASSCROW_NULL_ARGUMENT,
           "callback");
    CHECK(c == NULL); /* out-parameters are written only on success */
    EXPECT(passcrow_parse_ratio(NULL, 0, &u, &u2), PASSCROW_NULL_ARGUMENT, "text");
    EXPECT(passcrow_parse_ratio("2/3", 0, NULL, &u2), PASSCROW_NULL_ARGUMENT, "out_n");
    EXPECT(passcrow_policy_new(NULL, NULL, 0, 0, 0, &p), PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_policy_set_lifetimes(NULL, 1, 1), PASSCROW_NULL_ARGUMENT, "policy");
    EXPECT(passcrow_policy_ratio(NULL, &u, &u2, &n), PASSCROW_NULL_ARGUMENT, "policy");
    EXPECT(passcrow_protect(NULL, "x", NULL, 0, NULL, 0, false, NULL, NULL),
           PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_renew(NULL, "x", NULL, 0, NULL, NULL), PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_protected_ephemeral_id(NULL, &bytes, &n, &t), PASSCROW_NULL_ARGUMENT,
           "protection");
    EXPECT(passcrow_protected_cleanup_failures(NULL, &n), PASSCROW_NULL_ARGUMENT, "protection");
    EXPECT(passcrow_protected_warning_count(NULL, &n), PASSCROW_NULL_ARGUMENT, "protection");
    EXPECT(passcrow_protected_totp_count(NULL, &n), PASSCROW_NULL_ARGUMENT, "protection");
    {
        passcrow_totp_enrolment e;
        const char *w = NULL;
        EXPECT(passcrow_protected_totp(NULL, 0, &e, &bytes, &n), PASSCROW_NULL_ARGUMENT,
               "protection");
        EXPECT(passcrow_protected_warning(NULL, 0, &w), PASSCROW_NULL_ARGUMENT, "protection");
        CHECK(bytes == NULL && w == NULL);
    }
    /* Reporting calls refuse NULL without replacing the message. */
    CHECK(passcrow_pending_release_at(NULL) == PASSCROW_NULL_ARGUMENT);
    EXPECT(passcrow_pack_open(NULL, "x", &pk), PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_pack_counts(NULL, &u, &n, &b), PASSCROW_NULL_ARGUMENT, "pack");
    EXPECT(passcrow_verify(NULL, NULL, &v), PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_verification_counts(NULL, &n, &u, &n2), PASSCROW_NULL_ARGUMENT,
           "verification");
    EXPECT(passcrow_verification_hint(NULL, 0, &h), PASSCROW_NULL_ARGUMENT, "verification");
    EXPECT(passcrow_recover(NULL, NULL, NULL, 0, &bytes, &n), PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_recover_ephemeral(NULL, NULL, one, 1, &pk), PASSCROW_NULL_ARGUMENT,
           "client");
    EXPECT(passcrow_forget(NULL, "x", true, NULL), PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_list(NULL, &l), PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_expiring(NULL, 10, &l), PASSCROW_NULL_ARGUMENT, "client");
    EXPECT(passcrow_pack_list_len(NULL, &n), PASSCROW_NULL_ARGUMENT, "list");
    EXPECT(passcrow_pack_list_get(NULL, 0, &info), PASSCROW_NULL_ARGUMENT, "list");
    EXPECT(passcrow_http_response_set(NULL, 200, NULL, 0), PASSCROW_NULL_ARGUMENT, "response");
    EXPECT(passcrow_http_response_set_error(NULL, "x"), PASSCROW_NULL_ARGUMENT, "response");
    EXPECT(passcrow_error_message(NULL, 10, &n3), PASSCROW_NULL_ARGUMENT, NULL);
    EXPECT(passcrow_error_message(NULL, 0, NULL), PASSCROW_NULL_ARGUMENT, NULL);

    /* Freeing NULL is a no-op. */
    EXPECT(passcrow_client_free(NULL), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_free(NULL), PASSCROW_OK, NULL);
    EXPECT(passcrow_pack_free(NULL), PASSCROW_OK, NULL);
    EXPECT(passcrow_verification_free(NULL), PASSCROW_OK, NULL);
    EXPECT(passcrow_protected_free(NULL), PASSCROW_OK, NULL);
    EXPECT(passcrow_pack_list_free(NULL), PASSCROW_OK, NULL);
    EXPECT(passcrow_bytes_free(NULL, 5), PASSCROW_OK, NULL);
}

/* The error buffer: too small, size query, exact fit. */
static void small_buffers(void) {
    char tiny[4], exact[256];
    size_t n = 0, need = 0;
    uint32_t a, b;

    EXPECT(passcrow_parse_ratio("3/2", 0, &a, &b), PASSCROW_BAD_INPUT, "ratio");
    EXPECT(passcrow_error_message(tiny, sizeof tiny, &need), PASSCROW_INSUFFICIENT_SIZE, NULL);
    CHECK(need > sizeof tiny);
    n = 0;
    EXPECT(passcrow_error_message(NULL, 0, &n), PASSCROW_INSUFFICIENT_SIZE, NULL);
    CHECK(n == need);
    /* The message survived the failed copies; it fits exactly in `need`. */
    CHECK(need <= sizeof exact);
    EXPECT(passcrow_error_message(exact, need, &n), PASSCROW_OK, NULL);
    CHECK(n == need - 1 && strlen(exact) == n && strstr(exact, "passcrow_parse_ratio") != NULL);
    EXPECT(passcrow_error_message(exact, need - 1, &n), PASSCROW_INSUFFICIENT_SIZE, NULL);

    EXPECT(passcrow_parse_ratio("2/3", 0, &a, &b), PASSCROW_OK, NULL);
    CHECK(a == 2 && b == 3);
    EXPECT(passcrow_parse_ratio("2", 5, &a, &b), PASSCROW_OK, NULL);
    CHECK(a == 2 && b == 5);
}

struct http_state {
    passcrow_http_response *kept; /* wrongly kept past the callback */
    int calls;
    int mode; /* 0: fail with a message, 1: return 0 without an answer */
};

static int offline_http(void *userdata, const char *url, const uint8_t *body, size_t body_len,
                        passcrow_http_response *response) {
    struct http_state *s = userdata;
    (void)url;
    (void)body;
    (void)body_len;
    s->calls++;
    s->kept = response;
    if (s->mode == 1) {
        return 0;
    }
    passcrow_http_response_set_error(response, "no network in this test");
    return 1;
}

/* Host HTTP that fails, and a response handle used after its callback. */
static void http_callback(const char *home) {
    struct http_state s = {NULL, 0, 0};
    passcrow_client *c = NULL;
    passcrow_policy *p = NULL;
    const char *ids[2] = {"a@example.org via http://127.0.0.1:9",
                          "b@example.org via http://127.0.0.1:9"};

    EXPECT(passcrow_client_new_with_http(home, home, offline_http, &s, &c), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_new(c, ids, 2, 1, 2, &p), PASSCROW_OK, NULL);
    EXPECT(passcrow_protect(c, "offline", (const uint8_t *)"s", 1, p, PASSCROW_EPHEMERAL_NO,
                            false, NULL, NULL),
           PASSCROW_INCOMPLETE, "no network in this test");
    CHECK(s.calls > 0);
    /* The response handle died with its callback. */
    EXPECT(passcrow_http_response_set(s.kept, 200, (const uint8_t *)"{}", 2),
           PASSCROW_INVALID_HANDLE, "passcrow_http_response");
    s.mode = 1;
    EXPECT(passcrow_protect(c, "offline", (const uint8_t *)"s", 1, p, PASSCROW_EPHEMERAL_NO,
                            false, NULL, NULL),
           PASSCROW_INCOMPLETE, "without an answer");
    passcrow_policy_free(p);
    passcrow_client_free(c);
}

/* Handles freed twice, of the wrong type, or with the wrong length. */
static void double_free(const char *home) {
    passcrow_pack_list *l = NULL;
    passcrow_client *c = NULL;
    passcrow_policy *p = NULL;
    const char *ids[1] = {"a@example.org via http://127.0.0.1:9"};

    EXPECT(passcrow_client_new(home, home, &c), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_new(c, ids, 1, 0, 0, &p), PASSCROW_OK, NULL);
    /* A policy is not a pack, a client is not a policy. */
    EXPECT(passcrow_pack_free((passcrow_pack *)p), PASSCROW_INVALID_HANDLE, "passcrow_policy");
    EXPECT(passcrow_policy_set_lifetimes((passcrow_policy *)c, 1, 1), PASSCROW_INVALID_HANDLE,
           "passcrow_client");
    EXPECT(passcrow_policy_free(p), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_free(p), PASSCROW_INVALID_HANDLE, "freed already");
    EXPECT(passcrow_client_free(c), PASSCROW_OK, NULL);
    EXPECT(passcrow_client_free(c), PASSCROW_INVALID_HANDLE, "freed already");
    /* Use after free is caught the same way (while the address is not reused). */
    EXPECT(passcrow_list(c, &l), PASSCROW_INVALID_HANDLE, "freed already");
    CHECK(l == NULL);
}

/* Bad input that never reaches a server. */
static void bad_input(const char *home) {
    passcrow_client *c = NULL;
    passcrow_policy *p = NULL;
    passcrow_pack *pk = NULL;
    uint32_t n = 0, m = 0;
    size_t ids_n = 0;
    const char *bad_ids[1] = {"not an identity"};
    const char *ids[3] = {"a@example.org via http://127.0.0.1:9",
                          "b@example.org via http://127.0.0.1:9",
                          "c@example.org via http://127.0.0.1:9"};
    const char bad_utf8[] = {'p', (char)0xff, 'k', 0};

    EXPECT(passcrow_client_new("/nonexistent/passcrow", home, &c), PASSCROW_NOT_FOUND,
           "does not exist");
    EXPECT(passcrow_client_new(home, home, &c), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_new(c, bad_ids, 1, 0, 0, &p), PASSCROW_BAD_INPUT, NULL);
    EXPECT(passcrow_policy_new(c, ids, 3, 3, 2, &p), PASSCROW_BAD_INPUT, "ratio");
    EXPECT(passcrow_policy_new(c, NULL, 2, 1, 2, &p), PASSCROW_NULL_ARGUMENT, "identities");
    {
        const char *holes[2] = {ids[0], NULL};
        EXPECT(passcrow_policy_new(c, holes, 2, 1, 2, &p), PASSCROW_NULL_ARGUMENT,
               "identities[1]");
    }
    EXPECT(passcrow_policy_new(c, ids, 3, 2, 3, &p), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_ratio(p, &n, &m, &ids_n), PASSCROW_OK, NULL);
    CHECK(n == 2 && m == 3 && ids_n == 3);
    EXPECT(passcrow_protect(c, "x", (const uint8_t *)"s", 1, p, 7, false, NULL, NULL),
           PASSCROW_INVALID_ENUM, "ephemeral");
    EXPECT(passcrow_protect(c, "x", NULL, 3, p, PASSCROW_EPHEMERAL_NO, false, NULL, NULL),
           PASSCROW_NULL_ARGUMENT, "secret");
    EXPECT(passcrow_protect(c, bad_utf8, (const uint8_t *)"s", 1, p, PASSCROW_EPHEMERAL_NO, false,
                            NULL, NULL),
           PASSCROW_INVALID_UTF8, "name");
    EXPECT(passcrow_protect(c, "", (const uint8_t *)"s", 1, p, PASSCROW_EPHEMERAL_NO,
                            false, NULL, NULL),
           PASSCROW_BAD_INPUT, "empty");
    EXPECT(passcrow_pack_open(c, "no-such-pack", &pk), PASSCROW_NOT_FOUND, "no-such-pack");
    CHECK(pk == NULL);
    EXPECT(passcrow_forget(c, "no-such-pack", true, NULL), PASSCROW_NOT_FOUND, NULL);
    EXPECT(passcrow_renew(c, "no-such-pack", (const uint8_t *)"s", 1, NULL, NULL),
           PASSCROW_NOT_FOUND, NULL);
    passcrow_policy_free(p);
    passcrow_client_free(c);
}

/* A corrupted pack file: open fails with its code, list reports it. */
static void corrupted_pack(const char *home) {
    passcrow_client *c = NULL;
    passcrow_pack *pk = NULL;
    passcrow_pack_list *l = NULL;
    passcrow_pack_info info;
    size_t n = 0, i;
    int seen = 0;
    passcrow_result r;

    write_file(home, "broken.passcrow", "{\"name\": \"broken\", \"min-shares\": ");
    write_file(home, "strange.passcrow", "{\"name\": \"strange\", \"min-shares\": 2, \"escrow\": "
                                         "[], \"extra\": true}");
    EXPECT(passcrow_client_new(home, home, &c), PASSCROW_OK, NULL);
    r = passcrow_pack_open(c, "broken", &pk);
    checks++;
    if (r != PASSCROW_PROTOCOL && r != PASSCROW_BAD_INPUT) {
        failures++;
        fprintf(stderr, "opening a truncated pack returned %u (%s)\n", (unsigned)r,
                last_message());
    }
    CHECK(pk == NULL && strstr(last_message(), "broken") != NULL);
    r = passcrow_pack_open(c, "strange", &pk);
    CHECK((r == PASSCROW_PROTOCOL || r == PASSCROW_BAD_INPUT) && pk == NULL);
    EXPECT(passcrow_list(c, &l), PASSCROW_OK, NULL);
    EXPECT(passcrow_pack_list_len(l, &n), PASSCROW_OK, NULL);
    for (i = 0; i < n; i++) {
        EXPECT(passcrow_pack_list_get(l, i, &info), PASSCROW_OK, NULL);
        if (strcmp(info.name, "broken") == 0) {
            seen = 1;
            CHECK(info.error != NULL && info.error[0] != '\0');
        }
    }
    CHECK(seen);
    EXPECT(passcrow_pack_list_get(l, n, &info), PASSCROW_OUT_OF_RANGE, "pack");
    passcrow_pack_list_free(l);
    /* An unreadable pack can still be forgotten locally. */
    EXPECT(passcrow_forget(c, "broken", true, NULL), PASSCROW_OK, NULL);
    EXPECT(passcrow_forget(c, "strange", true, NULL), PASSCROW_OK, NULL);
    passcrow_client_free(c);
}

/* Against the real server: wrong codes, too few, foreign prefixes, an
 * altered secret, the wrong recover function, bytes freed wrongly. */
static void with_server(const char *home, const char *url, const char *codes_file) {
    passcrow_client *c = NULL;
    passcrow_policy *p = NULL;
    passcrow_pack *pk = NULL, *pk2 = NULL;
    passcrow_verification *v = NULL;
    passcrow_protected *done = NULL;
    passcrow_hint h;
    uint8_t *secret = NULL, *id = NULL;
    size_t len = 0, id_len = 0, hints = 0, fails = 0, cleanups = 9;
    uint32_t min = 0;
    int64_t exp = 0;
    char id_text[3][200], code_a[64], code_b[64], wrong[64], spaced[80];
    const char *ids[3] = {id_text[0], id_text[1], id_text[2]};
    const char *typed[2];

    snprintf(id_text[0], sizeof id_text[0], "misuse-a@example.org via %s", url);
    snprintf(id_text[1], sizeof id_text[1], "misuse-b@example.org via %s", url);
    snprintf(id_text[2], sizeof id_text[2], "misuse-c@example.org via %s", url);
    EXPECT(passcrow_client_new(home, home, &c), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_new(c, ids, 3, 2, 3, &p), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_set_lifetimes(p, 1, 0), PASSCROW_OK, NULL);
    EXPECT(passcrow_protect(c, "misuse", (const uint8_t *)"hunter2", 7, p, PASSCROW_EPHEMERAL_NO,
                            false, "misuse test", &done),
           PASSCROW_OK, NULL);
    EXPECT(passcrow_protected_ephemeral_id(done, &id, &id_len, &exp), PASSCROW_NOT_FOUND,
           "ephemeral");
    EXPECT(passcrow_protected_cleanup_failures(done, &cleanups), PASSCROW_OK, NULL);
    CHECK(cleanups == 0);
    /* Not pending: the last failure was PASSCROW_NOT_FOUND. */
    CHECK(passcrow_pending_release_at(&exp) == PASSCROW_NOT_FOUND);
    {
        /* 2 of 3 on one server: it alone can meet the threshold. */
        size_t nw = 0, nt = 9;
        const char *w = NULL;
        passcrow_totp_enrolment e;
        EXPECT(passcrow_protected_warning_count(done, &nw), PASSCROW_OK, NULL);
        CHECK(nw >= 1);
        EXPECT(passcrow_protected_warning(done, 0, &w), PASSCROW_OK, NULL);
        CHECK(w != NULL && strstr(w, "server") != NULL);
        EXPECT(passcrow_protected_warning(done, nw, &w), PASSCROW_OUT_OF_RANGE, "warning");
        EXPECT(passcrow_protected_totp_count(done, &nt), PASSCROW_OK, NULL);
        CHECK(nt == 0);
        EXPECT(passcrow_protected_totp(done, 0, &e, &id, &id_len), PASSCROW_OUT_OF_RANGE,
               "enrolment");
        CHECK(id == NULL);
    }
    passcrow_protected_free(done);
    /* The same name again, without replace. */
    EXPECT(passcrow_protect(c, "misuse", (const uint8_t *)"x", 1, p, PASSCROW_EPHEMERAL_NO, false,
                            NULL, NULL),
           PASSCROW_BAD_INPUT, "exists");

    EXPECT(passcrow_pack_open(c, "misuse", &pk), PASSCROW_OK, NULL);
    EXPECT(passcrow_verify(c, pk, &v), PASSCROW_OK, NULL);
    EXPECT(passcrow_verification_counts(v, &hints, &min, &fails), PASSCROW_OK, NULL);
    CHECK(hints == 3 && min == 2 && fails == 0);
    EXPECT(passcrow_verification_hint(v, 0, &h), PASSCROW_OK, NULL);
    CHECK(h.prefix == '1' && strcmp(h.kind, "email") == 0 && h.action_url == NULL);
    EXPECT(passcrow_verification_hint(v, hints, &h), PASSCROW_OUT_OF_RANGE, "hint 3 of 3");
    if (!read_code(codes_file, "email:misuse-a@example.org", code_a, sizeof code_a) ||
        !read_code(codes_file, "email:misuse-b@example.org", code_b, sizeof code_b)) {
        failures++;
        fprintf(stderr, "no codes delivered to %s\n", codes_file);
        goto out;
    }

    /* Too few codes; a code for no escrow of this pack. */
    typed[0] = code_a;
    EXPECT(passcrow_recover(c, pk, typed, 1, &secret, &len), PASSCROW_BAD_INPUT, "need at least");
    typed[1] = "Z123456";
    EXPECT(passcrow_recover(c, pk, typed, 2, &secret, &len), PASSCROW_BAD_INPUT, "matches none");
    /* A wrong code (right prefix, wrong digits). */
    strcpy(wrong, code_b);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == '0' ? '1' : '0';
    typed[1] = wrong;
    EXPECT(passcrow_recover(c, pk, typed, 2, &secret, &len), PASSCROW_WRONG_CODE,
           "wrong verification code");
    CHECK(secret == NULL && len == 0);
    /* The wrong recover function for this pack. */
    EXPECT(passcrow_recover_ephemeral(c, pk, typed, 2, &pk2), PASSCROW_BAD_INPUT, "ephemeral");

    /* The attempt above used up code_a (the server released its share):
     * ask for fresh codes. */
    passcrow_verification_free(v);
    v = NULL;
    EXPECT(passcrow_verify(c, pk, &v), PASSCROW_OK, NULL);
    if (!read_code(codes_file, "email:misuse-a@example.org", code_a, sizeof code_a) ||
        !read_code(codes_file, "email:misuse-b@example.org", code_b, sizeof code_b)) {
        failures++;
        fprintf(stderr, "no fresh codes delivered to %s\n", codes_file);
        goto out;
    }
    typed[0] = code_a;

    /* The right codes (typed with blanks: forgiven). */
    snprintf(spaced, sizeof spaced, " %c %s ", code_b[0], code_b + 1);
    typed[1] = spaced;
    EXPECT(passcrow_recover(c, pk, typed, 2, &secret, &len), PASSCROW_OK, NULL);
    CHECK(len == 7 && memcmp(secret, "hunter2", 7) == 0);
    EXPECT(passcrow_bytes_free(secret, len + 1), PASSCROW_INVALID_HANDLE, "length");
    EXPECT(passcrow_bytes_free(secret + 1, len - 1), PASSCROW_INVALID_HANDLE, "byte buffer");
    EXPECT(passcrow_bytes_free(secret, len), PASSCROW_OK, NULL);
    EXPECT(passcrow_bytes_free(secret, len), PASSCROW_INVALID_HANDLE, "freed already");
    secret = NULL;
    /* Codes are consumed on use. */
    EXPECT(passcrow_recover(c, pk, typed, 2, &secret, &len), PASSCROW_INCOMPLETE, "not found");
    CHECK(secret == NULL);

out:
    passcrow_verification_free(v);
    passcrow_pack_free(pk);
    EXPECT(passcrow_forget(c, "misuse", false, NULL), PASSCROW_OK, NULL);
    passcrow_policy_free(p);
    passcrow_client_free(c);
}

/* A tiny host HTTP stack for passcrow_client_new_with_http: plain HTTP/1.1
 * to http://127.0.0.1:PORT only, one connection per request. */
struct host_http {
    int calls;
};

static int host_post(void *userdata, const char *url, const uint8_t *body, size_t body_len,
                     passcrow_http_response *response) {
    struct host_http *h = userdata;
    struct sockaddr_in addr;
    char head[512], *answer = NULL, *p;
    size_t got = 0, cap = 0;
    unsigned port = 0;
    int fd, status = 0, n, ok;
    char path[256];

    h->calls++;
    if (sscanf(url, "http://127.0.0.1:%u%255s", &port, path) != 2) {
        passcrow_http_response_set_error(response, "host_post: only http://127.0.0.1");
        return 1;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (fd >= 0) close(fd);
        passcrow_http_response_set_error(response, "host_post: connection refused");
        return 1;
    }
    n = snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 path, port, body_len);
    ok = write(fd, head, (size_t)n) == n && write(fd, body, body_len) == (ssize_t)body_len;
    while (ok) {
        ssize_t r;
        if (got + 4096 + 1 > cap) {
            char *bigger = realloc(answer, cap = (cap + 4096) * 2);
            if (bigger == NULL) {
                ok = 0;
                break;
            }
            answer = bigger;
        }
        r = read(fd, answer + got, 4096);
        if (r < 0) ok = 0;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (ok && answer != NULL) {
        answer[got] = '\0';
        p = strstr(answer, "\r\n\r\n");
        ok = p != NULL && sscanf(answer, "HTTP/1.%*d %d", &status) == 1;
        if (ok) {
            p += 4;
            passcrow_http_response_set(response, (uint16_t)status, (const uint8_t *)p,
                                       got - (size_t)(p - answer));
        }
    }
    free(answer);
    if (!ok) {
        passcrow_http_response_set_error(response, "host_post: no HTTP answer");
        return 1;
    }
    return 0;
}

/* The whole flow over the host's HTTP: protect, verify, recover, forget. */
static void host_http_flow(const char *home, const char *url, const char *codes_file) {
    struct host_http h = {0};
    passcrow_client *c = NULL;
    passcrow_policy *p = NULL;
    passcrow_pack *pk = NULL;
    passcrow_verification *v = NULL;
    uint8_t *secret = NULL;
    size_t len = 0;
    char id_text[2][200], code[64];
    const char *ids[2] = {id_text[0], id_text[1]};
    const char *typed[1] = {code};
    size_t deleted = 0;

    snprintf(id_text[0], sizeof id_text[0], "host-a@example.org via %s", url);
    snprintf(id_text[1], sizeof id_text[1], "host-b@example.org via %s", url);
    EXPECT(passcrow_client_new_with_http(home, home, host_post, &h, &c), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_new(c, ids, 2, 1, 2, &p), PASSCROW_OK, NULL);
    EXPECT(passcrow_policy_set_lifetimes(p, 1, 0), PASSCROW_OK, NULL);
    EXPECT(passcrow_protect(c, "host-http", (const uint8_t *)"over your HTTP", 14, p,
                            PASSCROW_EPHEMERAL_NO, false, NULL, NULL),
           PASSCROW_OK, NULL);
    EXPECT(passcrow_pack_open(c, "host-http", &pk), PASSCROW_OK, NULL);
    EXPECT(passcrow_verify(c, pk, &v), PASSCROW_OK, NULL);
    if (!read_code(codes_file, "email:host-b@example.org", code, sizeof code)) {
        failures++;
        fprintf(stderr, "no code for host-b\n");
    } else {
        EXPECT(passcrow_recover(c, pk, typed, 1, &secret, &len), PASSCROW_OK, NULL);
        CHECK(len == 14 && memcmp(secret, "over your HTTP", 14) == 0);
        EXPECT(passcrow_bytes_free(secret, len), PASSCROW_OK, NULL);
    }
    EXPECT(passcrow_forget(c, "host-http", false, &deleted), PASSCROW_OK, NULL);
    CHECK(deleted == 2);
    CHECK(h.calls >= 7); /* policy, 2 escrows, 2 verifications, 1 recovery, 2 deletions */
    passcrow_verification_free(v);
    passcrow_pack_free(pk);
    passcrow_policy_free(p);
    passcrow_client_free(c);
}

int main(int argc, char **argv) {
    char home[] = "/tmp/passcrow-misuse-XXXXXX";

    if (argc != 3) {
        fprintf(stderr, "usage: %s http://127.0.0.1:PORT CODES_FILE\n", argv[0]);
        return 2;
    }
    if (mkdtemp(home) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(strcmp(passcrow_version(), PASSCROW_VERSION) == 0);
    null_arguments();
    small_buffers();
    double_free(home);
    bad_input(home);
    corrupted_pack(home);
    http_callback(home);
    with_server(home, argv[1], argv[2]);
    host_http_flow(home, argv[1], argv[2]);
    rmdir(home);
    printf("misuse: %d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
