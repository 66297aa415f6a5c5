/* fuzz_tmpdir() and fuzz_remove_tree(), included by the targets that need files (one
 * definition per binary: each binary holds one target). */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir_[512];

void fuzz_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char sub[4096];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                (size_t)snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < sizeof sub)
                fuzz_remove_tree(sub);
        closedir(d);
    }
    rmdir(path);
}

static void fuzz_tmpdir_remove(void)
{
    fuzz_remove_tree(fuzz_dir_);
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
