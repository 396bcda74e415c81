/*
 * mei_probe: a minimal MEI client written the way real ones are (mei-amt-check, MeTee), used by
 * tests/fuse.rs to run an unmodified C program against amt-sim's FUSE device file.
 *
 *   mei_probe [DEVICE]          connect to AMTHI, send GET_CODE_VERSIONS, print the AMT version
 *   mei_probe DEVICE --wait     connect, then block in read() with no request outstanding
 *                               (the test kills it there to check that a blocked read is interrupted)
 *
 * DEVICE defaults to /dev/mei0. Only the kernel's uapi header is needed (transport.md section 1).
 * Exit status: 0 success; 1 usage; 2 open; 3 connect; 4 write; 5 poll/read; 6 bad answer;
 * 7 a device semantic check failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define IOCTL_MEI_CONNECT_CLIENT 0xC0104801UL

/* AMTHI 12F80028-B4B7-4B2D-ACA8-46E0FF65814C in uuid_le byte order. */
static const uint8_t amthi_guid[16] = {0x28, 0x00, 0xF8, 0x12, 0xB7, 0xB4, 0x2D, 0x4B,
                                       0xAC, 0xA8, 0x46, 0xE0, 0xFF, 0x65, 0x81, 0x4C};

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int main(int argc, char **argv) {
    const char *dev = argc > 1 ? argv[1] : "/dev/mei0";
    int wait_mode = argc > 2 && strcmp(argv[2], "--wait") == 0;
    if (argc > 3 || (argc == 3 && !wait_mode)) {
        fprintf(stderr, "usage: mei_probe [DEVICE [--wait]]\n");
        return 1;
    }

    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", dev, strerror(errno));
        return 2;
    }

    uint8_t data[16];
    memcpy(data, amthi_guid, 16);
    if (ioctl(fd, IOCTL_MEI_CONNECT_CLIENT, data) != 0) {
        fprintf(stderr, "IOCTL_MEI_CONNECT_CLIENT: %s\n", strerror(errno));
        return 3;
    }
    uint32_t mtu = le32(data);
    printf("connected: max_msg_length=%u protocol_version=%u\n", mtu, data[4]);
    /* The kernel writes back only struct mei_client's fields; the rest keeps the GUID's bytes. */
    if (memcmp(data + 5, amthi_guid + 5, 11) != 0) {
        fprintf(stderr, "connect answer clobbered bytes 5..15 of the union\n");
        return 7;
    }

    /* One fd, one connection: a second connect is EBUSY. */
    memcpy(data, amthi_guid, 16);
    if (ioctl(fd, IOCTL_MEI_CONNECT_CLIENT, data) == 0 || errno != EBUSY) {
        fprintf(stderr, "second connect on one fd: expected EBUSY, got %s\n", strerror(errno));
        return 7;
    }
    /* Unknown ioctl numbers are ENOTTY. */
    if (ioctl(fd, 0xC0104899UL, data) == 0 || errno != ENOTTY) {
        fprintf(stderr, "unknown ioctl: expected ENOTTY, got %s\n", strerror(errno));
        return 7;
    }

    uint8_t *buf = malloc(mtu ? mtu : 1);
    if (!buf) return 5;

    /* Non-blocking mode is set after open, as MeTee does; nothing is queued yet: EAGAIN. */
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    if (read(fd, buf, mtu) >= 0 || errno != EAGAIN) {
        fprintf(stderr, "non-blocking read with nothing queued: expected EAGAIN, got %s\n",
                strerror(errno));
        return 7;
    }
    fcntl(fd, F_SETFL, fl);

    if (wait_mode) {
        printf("waiting in read\n");
        fflush(stdout);
        ssize_t n = read(fd, buf, mtu);
        fprintf(stderr, "read returned %zd (%s)\n", n, n < 0 ? strerror(errno) : "data");
        return 5;
    }

    /* GET_CODE_VERSIONS: version 1.1, reserved 0, command 0x0400001A, length 0. */
    static const uint8_t req[12] = {0x01, 0x01, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x04, 0, 0, 0, 0};
    if (write(fd, req, sizeof req) != (ssize_t)sizeof req) {
        fprintf(stderr, "write: %s\n", strerror(errno));
        return 4;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 5000);
    if (r <= 0 || !(p.revents & POLLIN)) {
        fprintf(stderr, "poll: %s (revents %#x)\n", r == 0 ? "timed out" : strerror(errno),
                (unsigned)p.revents);
        return 5;
    }
    ssize_t n = read(fd, buf, mtu);
    if (n < 0) {
        fprintf(stderr, "read: %s\n", strerror(errno));
        return 5;
    }

    /* Checks mei-amt-check makes: command | 0x00800000, version 1.1, length + 12 == bytes read. */
    if (n < 16 || buf[0] != 1 || buf[1] != 1 || le32(buf + 4) != 0x0480001A ||
        le32(buf + 8) + 12 != (uint32_t)n) {
        fprintf(stderr, "malformed answer (%zd bytes)\n", n);
        return 6;
    }
    uint32_t status = le32(buf + 12);
    if (status != 0) {
        fprintf(stderr, "GET_CODE_VERSIONS status %u\n", status);
        return 6;
    }
    /* BiosVersion[65], u32 count, count x {u16 len, char[20]; u16 len, char[20]}. */
    const uint8_t *cv = buf + 16;
    if (n < 16 + 65 + 4) return 6;
    uint32_t count = le32(cv + 65);
    if ((size_t)n < 16 + 65 + 4 + (size_t)count * 44) {
        fprintf(stderr, "code-version count %u exceeds the answer\n", count);
        return 6;
    }
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = cv + 69 + i * 44;
        uint16_t dl = le16(e);
        if (dl > 20) return 6;
        /* Firmware counts the description's NUL or not; the version is NUL-terminated in its
         * 20-byte field (rpc-go ignores its length field). */
        if (dl >= 3 && memcmp(e + 2, "AMT", 3) == 0 && (dl == 3 || e[5] == 0)) {
            printf("AMT version: %.*s\n", (int)strnlen((const char *)e + 24, 20),
                   (const char *)e + 24);
            free(buf);
            close(fd);
            return 0;
        }
    }
    fprintf(stderr, "no AMT entry among %u code versions\n", count);
    return 6;
}
