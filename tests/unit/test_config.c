/* test_config.c -- unit tests of the settings table (server/src/config.c):
 * defaults, environment variables, flags, precedence and refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tap.h"
#include "log.h"


static int load(int argc, const char **argv) {
    return config_load(argc, (char **)argv);
}

int main(void) {
    unsetenv("PARLEY_LISTEN");
    unsetenv("PARLEY_MAX_CHANNELS");
    unsetenv("PARLEY_LOG_LEVEL");
    unsetenv("PARLEY_TLS_CERT");
    unsetenv("PARLEY_TLS_KEY");

    const char *none[] = {"parley"};
    CHECK("defaults load", load(1, none) == 0);
    CHECK("default listen", strcmp(config.listen, "127.0.0.1:4000") == 0);
    CHECK("default max channels", config.max_channels == 100);
    CHECK("default max frame", config.max_frame == 65536);
    CHECK("default idle timeout", config.idle_timeout == 60);
    CHECK("default log level", log_level == LOG_INFO);
    CHECK("TLS off by default", *config.tls_cert == '\0' && *config.tls_key == '\0');
    CHECK("default TLS 1.2 ciphers", strcmp(config.tls_ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20") == 0);
    CHECK("default rate limits", config.msg_rate == 10 && config.msg_burst == 30 &&
                                     config.join_rate == 10 && config.join_burst == 100 &&
                                     config.rate_strikes == 10);
    CHECK("default max payload", config.max_payload == 8192);
    CHECK("default reconnect penalty", config.abuse_ban == 2 && config.abuse_ban_max == 300 &&
                                           config.abuse_ban_addresses == 1);

    setenv("PARLEY_MAX_CHANNELS", "7", 1);
    setenv("PARLEY_LISTEN", "127.0.0.2:5000", 1);
    CHECK("env loads", load(1, none) == 0);
    CHECK("env sets max channels", config.max_channels == 7);
    CHECK("env sets listen", strcmp(config.listen, "127.0.0.2:5000") == 0);

    const char *flags[] = {"parley", "--max-channels", "9", "--listen=127.0.0.3:6000",
                           "--log-level", "debug"};
    CHECK("flags load", load(6, flags) == 0);
    CHECK("flag beats env", config.max_channels == 9);
    CHECK("--name=value form", strcmp(config.listen, "127.0.0.3:6000") == 0);
    CHECK("log level flag", log_level == LOG_DEBUG);
    unsetenv("PARLEY_MAX_CHANNELS");
    unsetenv("PARLEY_LISTEN");

    const char *bad_int[] = {"parley", "--max-channels", "ten"};
    CHECK("non-integer refused", load(3, bad_int) == -1);
    const char *range[] = {"parley", "--max-channels", "0"};
    CHECK("out of range refused", load(3, range) == -1);
    const char *unknown[] = {"parley", "--no-such-flag", "1"};
    CHECK("unknown flag refused", load(3, unknown) == -1);
    const char *noval[] = {"parley", "--listen"};
    CHECK("missing value refused", load(2, noval) == -1);
    const char *level[] = {"parley", "--log-level", "loud"};
    CHECK("bad log level refused", load(3, level) == -1);
    const char *listen[] = {"parley", "--listen", "4000"};
    CHECK("listen without host refused", load(3, listen) == -1);
    const char *cert_only[] = {"parley", "--tls-cert", "cert.pem"};
    CHECK("--tls-cert without --tls-key refused", load(3, cert_only) == -1);
    setenv("PARLEY_TLS_KEY", "key.pem", 1);
    CHECK("PARLEY_TLS_KEY without a certificate refused", load(1, none) == -1);
    CHECK("certificate by flag, key by env", load(3, cert_only) == 0 &&
                                                 strcmp(config.tls_cert, "cert.pem") == 0 &&
                                                 strcmp(config.tls_key, "key.pem") == 0);
    unsetenv("PARLEY_TLS_KEY");
    setenv("PARLEY_IDLE_TIMEOUT", "-5", 1);
    CHECK("bad env value refused", load(1, none) == -1);
    unsetenv("PARLEY_IDLE_TIMEOUT");

    const char *no_addr[] = {"parley", "--abuse-ban-addresses", "no", "--abuse-ban", "0"};
    CHECK("yes/no option: no", load(5, no_addr) == 0 && config.abuse_ban_addresses == 0 &&
                                   config.abuse_ban == 0);
    setenv("PARLEY_ABUSE_BAN_ADDRESSES", "0", 1);
    const char *yes_addr[] = {"parley", "--abuse-ban-addresses=yes"};
    CHECK("yes/no option: 0 from the environment", load(1, none) == 0 &&
                                                     config.abuse_ban_addresses == 0);
    CHECK("yes/no option: a flag's yes beats it", load(2, yes_addr) == 0 &&
                                                      config.abuse_ban_addresses == 1);
    unsetenv("PARLEY_ABUSE_BAN_ADDRESSES");
    const char *maybe[] = {"parley", "--abuse-ban-addresses", "maybe"};
    CHECK("yes/no option: anything else refused", load(3, maybe) == -1);
    const char *short_max[] = {"parley", "--abuse-ban", "60", "--abuse-ban-max", "30"};
    CHECK("--abuse-ban-max below --abuse-ban refused", load(5, short_max) == -1);
    const char *off_short_max[] = {"parley", "--abuse-ban", "0", "--abuse-ban-max", "1"};
    CHECK("... unless bans are off", load(5, off_short_max) == 0);

    FILE *f = tmpfile();
    config_usage(f);
    long size = ftell(f);
    rewind(f);
    char *text = calloc(1, (size_t)size + 1);
    CHECK("usage readable", text && fread(text, 1, (size_t)size, f) == (size_t)size);
    CHECK("usage lists flags with env vars",
          text && strstr(text, "--max-channels") && strstr(text, "PARLEY_MAX_CHANNELS") &&
              strstr(text, "--idle-timeout") && strstr(text, "PARLEY_LOG_LEVEL"));
    free(text);
    fclose(f);

    return TAP_END();
}
