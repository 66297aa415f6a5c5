/* fuzz_tmpdir(), included by the targets that need files (one definition per binary:
 * each binary holds one target). */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <unistd.h>

static char fuzz_dir_[512];

static void fuzz_tmpdir_remove(void)
{
    DIR *d = opendir(fuzz_dir_);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", fuzz_dir_, e->d_name), unlink(p);
        closedir(d);
    }
    rmdir(fuzz_dir_);
}

const char *fuzz_tmpdir(void)
{
    if (!fuzz_dir_[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/dallec-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fuzz_dir_)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_tmpdir_remove);
    }
    return fuzz_dir_;
}
