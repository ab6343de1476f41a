/* ses_voip.c -- VoIP calls from the archive (sessions.h). */
#include "analytics/ses_int.h"

int ses_voip_init(ses_t *s, char *err)
{
    (void)s;
    return rw_err(err, RW_EINPUT, "calls: not yet");
}
