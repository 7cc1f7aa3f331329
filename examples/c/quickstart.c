/*
 * quickstart.c: protect a secret 2-of-3 with a Passcrow server, then
 * recover it with verification codes, through libpasscrow's C API.
 *
 *   cc -Wall -Wextra -Werror quickstart.c $(pkg-config --cflags --libs passcrow)
 *   ./a.out http://127.0.0.1:PORT CODES_FILE
 *
 * The server must deliver codes to CODES_FILE (`passcrow-server
 * --deliver-to-file CODES_FILE`, lines `identity<TAB>code`) instead of by
 * e-mail: this program reads its "mail" from there, as a user would; and
 * allow SMS to Iceland (`[outbound] sms_countries = ["354"]` in its
 * config.toml), where this program's tel: identity is.
 */
#include <passcrow.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Print what failed, with the library's message, and say so. */
static int failed(const char *what, passcrow_result r) {
    char msg[1024];
    size_t n = 0;
    if (passcrow_error_message(msg, sizeof msg, &n) != PASSCROW_OK) {
        strcpy(msg, "(message too long)");
    }
    fprintf(stderr, "quickstart: %s failed (%u): %s\n", what, (unsigned)r, msg);
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

int main(int argc, char **argv) {
    static const char secret[] = "correct horse battery staple";
    char home[] = "/tmp/passcrow-quickstart-XXXXXX";
    char id_text[3][256];
    const char *ids[3];
    char codes[2][64];
    const char *typed[2] = {codes[0], codes[1]};
    passcrow_client *client = NULL;
    passcrow_policy *policy = NULL;
    passcrow_pack *pack = NULL;
    passcrow_verification *verification = NULL;
    uint8_t *recovered = NULL;
    size_t recovered_len = 0, hints = 0, failures = 0, i;
    uint32_t min_shares = 0;
    passcrow_result r;
    int status = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: %s http://127.0.0.1:PORT CODES_FILE\n", argv[0]);
        return 2;
    }
    printf("libpasscrow %s (header %s)\n", passcrow_version(), PASSCROW_VERSION);
    if (mkdtemp(home) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    /* 1. A client whose packs (and policy.rc) live in `home`. */
    r = passcrow_client_new(home, home, &client);
    if (r != PASSCROW_OK) {
        status = failed("passcrow_client_new", r);
        goto out;
    }

    /* 2. A policy: any 2 of these 3 identities can recover. One day of
     *    escrow is free (longer lifetimes cost proof of work). */
    snprintf(id_text[0], sizeof id_text[0], "alice@example.org via %s", argv[1]);
    snprintf(id_text[1], sizeof id_text[1], "bob@example.org via %s", argv[1]);
    snprintf(id_text[2], sizeof id_text[2], "+3545885522 via %s", argv[1]);
    for (i = 0; i < 3; i++) {
        ids[i] = id_text[i];
    }
    r = passcrow_policy_new(client, ids, 3, 2, 3, &policy);
    if (r == PASSCROW_OK) {
        r = passcrow_policy_set_lifetimes(policy, 1, 0);
    }
    if (r != PASSCROW_OK) {
        status = failed("passcrow_policy_new", r);
        goto out;
    }

    /* 3. Protect the secret under the pack name "wallet". */
    r = passcrow_protect(client, "wallet", (const uint8_t *)secret, strlen(secret), policy,
                         PASSCROW_EPHEMERAL_NO, false, NULL, NULL);
    if (r != PASSCROW_OK) {
        status = failed("passcrow_protect", r);
        goto out;
    }
    printf("protected \"wallet\" (2 of 3 identities needed)\n");

    /* 4. Forgot the password: open the pack and ask for codes. */
    r = passcrow_pack_open(client, "wallet", &pack);
    if (r == PASSCROW_OK) {
        r = passcrow_verify(client, pack, &verification);
    }
    if (r == PASSCROW_OK) {
        r = passcrow_verification_counts(verification, &hints, &min_shares, &failures);
    }
    if (r != PASSCROW_OK) {
        status = failed("verification", r);
        goto out;
    }
    for (i = 0; i < hints; i++) {
        passcrow_hint h;
        r = passcrow_verification_hint(verification, i, &h);
        if (r != PASSCROW_OK) {
            status = failed("passcrow_verification_hint", r);
            goto out;
        }
        printf("a code starting with %c was sent to %s (%s)\n", h.prefix, h.hint, h.kind);
    }
    printf("%u codes needed\n", (unsigned)min_shares);

    /* 5. "Check your mail": two of the codes, from the delivery file. */
    if (!read_code(argv[2], "email:alice@example.org", codes[0], sizeof codes[0]) ||
        !read_code(argv[2], "tel:+3545885522", codes[1], sizeof codes[1])) {
        fprintf(stderr, "quickstart: no codes in %s\n", argv[2]);
        goto out;
    }

    /* 6. Recover and compare. */
    r = passcrow_recover(client, pack, typed, 2, &recovered, &recovered_len);
    if (r != PASSCROW_OK) {
        status = failed("passcrow_recover", r);
        goto out;
    }
    if (recovered_len != strlen(secret) || memcmp(recovered, secret, recovered_len) != 0) {
        fprintf(stderr, "quickstart: recovered the wrong secret\n");
        goto out;
    }
    printf("recovered: %.*s\n", (int)recovered_len, (const char *)recovered);

    /* 7. Forget the pack (its escrows on the server too). */
    r = passcrow_forget(client, "wallet", false, NULL);
    if (r != PASSCROW_OK) {
        status = failed("passcrow_forget", r);
        goto out;
    }
    printf("forgot \"wallet\"; OK\n");
    status = 0;

out:
    /* Every handle and buffer is freed; the secret is zeroed. */
    passcrow_bytes_free(recovered, recovered_len);
    passcrow_verification_free(verification);
    passcrow_pack_free(pack);
    passcrow_policy_free(policy);
    passcrow_client_free(client);
    {
        char path[128];
        snprintf(path, sizeof path, "%s/policy.rc", home);
        unlink(path);
        rmdir(home);
    }
    return status;
}
