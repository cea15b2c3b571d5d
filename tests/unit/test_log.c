/* test_log.c -- log_quote: a value from a client stays one logfmt value on
 * one line, in valid UTF-8, within its buffer. */
#include <stdio.h>
#include <string.h>

#include <parley/protocol.h>

#include "log.h"
#include "tap.h"

static char buf[96];

static int quoted(const char *in, const char *want) {
    log_quote(in, buf, sizeof buf);
    if (strcmp(buf, want)) {
        printf("# log_quote gave %s, wanted %s\n", buf, want);
        return 0;
    }
    return 1;
}

int main(void) {
    CHECK("plain text is quoted", quoted("room:lobby", "\"room:lobby\""));
    CHECK("quotes and backslashes are escaped", quoted("a\"b\\c", "\"a\\\"b\\\\c\""));
    CHECK("control characters are written as \\xNN", quoted("a\nb\x7f", "\"a\\x0ab\\x7f\""));
    CHECK("valid UTF-8 is kept", quoted("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x92\xac", "\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x92\xac\""));
    CHECK("bytes that are not UTF-8 are written as \\xNN",
          quoted("\xff\xfe", "\"\\xff\\xfe\""));
    CHECK("a sequence cut short is not UTF-8", quoted("a\xc3", "\"a\\xc3\""));
    CHECK("an overlong '/' is not UTF-8", quoted("\xc0\xaf", "\"\\xc0\\xaf\""));
    CHECK("a surrogate is not UTF-8", quoted("\xed\xa0\x80", "\"\\xed\\xa0\\x80\""));
    CHECK("a lone continuation byte is not UTF-8", quoted("\x80x", "\"\\x80x\""));
    CHECK("NULL is an empty value", quoted(NULL, "\"\""));

    char longer[200];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    log_quote(longer, buf, sizeof buf);
    CHECK("cut after 80 characters with ...",
          strlen(buf) == 1 + 80 + 3 + 1 && !strcmp(buf + 81, "...\""));

    /* every character escaped: the buffer fills before 80 characters */
    char ctl[60];
    memset(ctl, '\x01', sizeof ctl - 1);
    ctl[sizeof ctl - 1] = '\0';
    log_quote(ctl, buf, sizeof buf);
    size_t len = strlen(buf);
    CHECK("a full buffer ends the value with ... and its quote",
          len < sizeof buf && len >= 5 && !strcmp(buf + len - 4, "...\""));

    /* UTF-8 is never cut inside a character, so the value stays valid */
    char wide[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(wide, "\xe6\x97\xa5");
    log_quote(wide, buf, sizeof buf);
    CHECK("a value cut among multibyte characters is valid UTF-8",
          proto_utf8_valid((const unsigned char *)buf, strlen(buf)) && strlen(buf) < sizeof buf);
    return TAP_END();
}
