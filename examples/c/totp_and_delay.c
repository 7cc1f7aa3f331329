/*
 * totp_and_delay.c: the two newer ways to prove it is you, through
 * libpasscrow's C API:
 *
 *  1. an authenticator app (a `totp:` identity): protect, show the user
 *     the enrolment URI (an app would draw it as a QR code), then recover
 *     with the 6 digits the app shows, read from standard input;
 *  2. a release delay: an escrow that asks for `delay=1h` answers a right
 *     code with PASSCROW_PENDING and the time the release is due, and
 *     every identity is told (so the owner can stop it).
 *
 *   cc -Wall -Wextra -Werror totp_and_delay.c $(pkg-config --cflags --libs passcrow)
 *   ./a.out http://127.0.0.1:PORT CODES_FILE
 *
 * The server must offer both (`passcrow-server` does by default, the delay
 * once `[outbound] public_url` is set) and deliver codes to CODES_FILE
 * (`--deliver-to-file`, lines `identity<TAB>code`).
 */
#include <passcrow.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failed(const char *what, passcrow_result r) {
    char msg[1024];
    size_t n = 0;
    if (passcrow_error_message(msg, sizeof msg, &n) != PASSCROW_OK) {
        strcpy(msg, "(message too long)");
    }
    fprintf(stderr, "totp_and_delay: %s failed (%u): %s\n", what, (unsigned)r, msg);
    return 1;
}

/* The newest code delivered to `identity`, into `code` (size `len`). */
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

/* Protect `secret` as pack `name` under the one identity `identity`. */
static passcrow_result protect_one(passcrow_client *client, const char *name,
                                   const char *identity, const char *secret,
                                   passcrow_protected **out) {
    passcrow_policy *policy = NULL;
    const char *ids[1] = {identity};
    passcrow_result r = passcrow_policy_new(client, ids, 1, 1, 1, &policy);
    if (r == PASSCROW_OK) {
        r = passcrow_policy_set_lifetimes(policy, 1, 0);
    }
    if (r == PASSCROW_OK) {
        r = passcrow_protect(client, name, (const uint8_t *)secret, strlen(secret), policy,
                             PASSCROW_EPHEMERAL_NO, true, NULL, out);
    }
    passcrow_policy_free(policy);
    return r;
}

/* Part 1: an authenticator app. */
static int authenticator(passcrow_client *client, const char *server) {
    static const char secret[] = "seed words of a wallet";
    char identity[256], typed[64];
    const char *codes[1] = {typed};
    passcrow_protected *done = NULL;
    passcrow_pack *pack = NULL;
    passcrow_verification *verification = NULL;
    passcrow_totp_enrolment e;
    uint8_t *uri = NULL, *recovered = NULL;
    size_t uri_len = 0, recovered_len = 0, n = 0;
    passcrow_hint h;
    passcrow_result r;
    int status = 1;

    snprintf(identity, sizeof identity, "totp:phone via %s", server);
    r = protect_one(client, "totp-demo", identity, secret, &done);
    if (r != PASSCROW_OK) {
        return failed("passcrow_protect (totp)", r);
    }
    /* The secret of each totp: identity is nowhere but in the escrow:
     * show it to the user now, once. */
    r = passcrow_protected_totp_count(done, &n);
    if (r == PASSCROW_OK && n != 1) {
        fprintf(stderr, "totp_and_delay: %zu enrolments, not 1\n", n);
        goto out;
    }
    if (r == PASSCROW_OK) {
        r = passcrow_protected_totp(done, 0, &e, &uri, &uri_len);
    }
    if (r != PASSCROW_OK) {
        status = failed("passcrow_protected_totp", r);
        goto out;
    }
    printf("enrol %s (server %s, prefix %c): %.*s\n", e.label, e.server, e.prefix ? e.prefix : '-',
           (int)uri_len, (const char *)uri);
    fflush(stdout);

    /* Forgot the password: verify sends nothing for an authenticator; the
     * hint says to open the app. */
    r = passcrow_pack_open(client, "totp-demo", &pack);
    if (r == PASSCROW_OK) {
        r = passcrow_verify(client, pack, &verification);
    }
    if (r == PASSCROW_OK) {
        r = passcrow_verification_hint(verification, 0, &h);
    }
    if (r != PASSCROW_OK) {
        status = failed("passcrow_verify (totp)", r);
        goto out;
    }
    printf("%s: %s\n", h.kind, h.hint);
    printf("the 6 digits your app shows: ");
    fflush(stdout);
    if (fgets(typed, sizeof typed, stdin) == NULL) {
        fprintf(stderr, "totp_and_delay: no code on standard input\n");
        goto out;
    }
    typed[strcspn(typed, "\r\n")] = '\0';
    r = passcrow_recover(client, pack, codes, 1, &recovered, &recovered_len);
    if (r != PASSCROW_OK) {
        status = failed("passcrow_recover (totp)", r);
        goto out;
    }
    if (recovered_len != strlen(secret) || memcmp(recovered, secret, recovered_len) != 0) {
        fprintf(stderr, "totp_and_delay: recovered the wrong secret\n");
        goto out;
    }
    printf("\nrecovered with the authenticator: %.*s\n", (int)recovered_len,
           (const char *)recovered);
    /* The same code again, in a new recovery, is refused: each code is
     * accepted once. */
    passcrow_bytes_free(recovered, recovered_len);
    recovered = NULL;
    recovered_len = 0;
    passcrow_verification_free(verification);
    verification = NULL;
    r = passcrow_verify(client, pack, &verification);
    if (r != PASSCROW_OK) {
        status = failed("passcrow_verify (totp, again)", r);
        goto out;
    }
    r = passcrow_recover(client, pack, codes, 1, &recovered, &recovered_len);
    if (r != PASSCROW_WRONG_CODE) {
        fprintf(stderr, "totp_and_delay: a replayed code gave %u, not PASSCROW_WRONG_CODE\n",
                (unsigned)r);
        goto out;
    }
    printf("the same code again: refused\n");
    status = 0;
out:
    passcrow_bytes_free(recovered, recovered_len);
    passcrow_bytes_free(uri, uri_len);
    passcrow_verification_free(verification);
    passcrow_pack_free(pack);
    passcrow_protected_free(done);
    return status;
}

/* Part 2: a release delay. */
static int delayed(passcrow_client *client, const char *server, const char *codes_file) {
    static const char secret[] = "the key of a diary";
    char identity[256], code[64];
    const char *codes[1] = {code};
    passcrow_pack *pack = NULL;
    passcrow_verification *verification = NULL;
    uint8_t *recovered = NULL;
    size_t recovered_len = 0;
    int64_t release_at = 0;
    time_t now;
    passcrow_result r;
    int status = 1;

    /* Someone to tell besides the address the code goes to. */
    snprintf(identity, sizeof identity,
             "carol@example.org, notify=dave@example.org, delay=1h via %s", server);
    r = protect_one(client, "delay-demo", identity, secret, NULL);
    if (r == PASSCROW_OK) {
        r = passcrow_pack_open(client, "delay-demo", &pack);
    }
    if (r == PASSCROW_OK) {
        r = passcrow_verify(client, pack, &verification);
    }
    if (r != PASSCROW_OK) {
        return failed("protect and verify (delay)", r);
    }
    if (!read_code(codes_file, "email:carol@example.org", code, sizeof code)) {
        fprintf(stderr, "totp_and_delay: no code for carol in %s\n", codes_file);
        goto out;
    }
    now = time(NULL);
    r = passcrow_recover(client, pack, codes, 1, &recovered, &recovered_len);
    if (r != PASSCROW_PENDING) {
        status = failed("passcrow_recover (delay): not PASSCROW_PENDING", r);
        goto out;
    }
    r = passcrow_pending_release_at(&release_at);
    if (r != PASSCROW_OK) {
        status = failed("passcrow_pending_release_at", r);
        goto out;
    }
    if (release_at < (int64_t)now + 3500 || release_at > (int64_t)now + 3700) {
        fprintf(stderr, "totp_and_delay: release at %lld, not in an hour\n",
                (long long)release_at);
        goto out;
    }
    printf("recovery pending: come back in %lld s, with the same code\n",
           (long long)(release_at - (int64_t)now));
    status = 0;
out:
    passcrow_bytes_free(recovered, recovered_len);
    passcrow_verification_free(verification);
    passcrow_pack_free(pack);
    return status;
}

int main(int argc, char **argv) {
    char home[] = "/tmp/passcrow-totp-delay-XXXXXX";
    passcrow_client *client = NULL;
    passcrow_result r;
    int status = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: %s http://127.0.0.1:PORT CODES_FILE\n", argv[0]);
        return 2;
    }
    if (mkdtemp(home) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    r = passcrow_client_new(home, home, &client);
    if (r != PASSCROW_OK) {
        status = failed("passcrow_client_new", r);
    } else if (authenticator(client, argv[1]) == 0 && delayed(client, argv[1], argv[2]) == 0) {
        printf("OK\n");
        status = 0;
    }
    passcrow_forget(client, "totp-demo", true, NULL);
    passcrow_forget(client, "delay-demo", true, NULL);
    passcrow_client_free(client);
    {
        char path[128];
        snprintf(path, sizeof path, "%s/policy.rc", home);
        unlink(path);
        rmdir(home);
    }
    return status;
}
