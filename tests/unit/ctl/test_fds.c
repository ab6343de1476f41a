/* test_fds.c -- unit test for ctl/proto.c's ctl_recv_fd(): a message may
 * carry many descriptors; the first is the request's, every other one is
 * closed (a buffer with room for one still received two, and leaked one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/ctl_int.h"

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Send "status\n" with k descriptors (pipe ends) in one message. */
static void send_many(int sock, int k)
{
    int fds[64];
    char cbuf[CMSG_SPACE(sizeof fds)];
    struct iovec iov = {(void *)"status\n", 7};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = CMSG_SPACE((size_t)k * sizeof(int))};
    for (int i = 0; i < k; i += 2) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        fds[i] = p[0];
        if (i + 1 < k)
            fds[i + 1] = p[1];
        else
            close(p[1]);
    }
    memset(cbuf, 0, sizeof cbuf);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN((size_t)k * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, (size_t)k * sizeof(int));
    assert_int_equal(sendmsg(sock, &m, 0), 7);
    for (int i = 0; i < k; i++)
        close(fds[i]);
}

static void test_extra_fds_closed(void **state)
{
    (void)state;
    static const int counts[] = {0, 1, 2, 3, 8, 40};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int sv[2], fd;
        char buf[64];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        int before = open_fds();
        send_many(sv[0], counts[c]);
        assert_int_equal(ctl_recv_fd(sv[1], buf, sizeof buf, &fd), 7);
        if (counts[c] == 0) {
            assert_int_equal(fd, -1);
        } else {
            assert_true(fd >= 0);
            close(fd);
        }
        if (open_fds() != before)
            fail_msg("%d descriptors in one message: %d open before, %d after", counts[c],
                     before, open_fds());
        close(sv[0]);
        close(sv[1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extra_fds_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
