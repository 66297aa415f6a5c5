// The extern "C" shim over libsentencepiece (see spm_c.h). Every entry point is a
// try/catch: no C++ exception crosses into C, and every failed Status becomes -1 and a
// message in err.
#include "tokenizer/spm_c.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <unordered_map>
#include <vector>

namespace spm = sentencepiece;

struct spmc {
    spm::SentencePieceProcessor proc;
    int vocab = 0;
};

static void set_err(char *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, 256, fmt, ap);
    va_end(ap);
}

// The messages of libsentencepiece's Status carry a source location first
// ("./src/trainer_interface.cc(580) [cond] message"); keep only the message when the
// pattern is there, so users read the reason, not our dependency's file names. Some
// failures have no message after the location (a model that does not parse): those get
// `fallback`, or the failed condition when there is none.
static std::string status_text(const spm::util::Status &st, const char *fallback = nullptr)
{
    std::string m = st.message() ? st.message() : "";
    if (m.rfind("./src/", 0) == 0) {
        size_t open = m.find(" ["), close = m.find("] ", open == std::string::npos ? 0 : open);
        std::string cond = open != std::string::npos && close != std::string::npos && close > open
                               ? m.substr(open + 2, close - open - 2)
                               : "";
        m = close != std::string::npos ? m.substr(close + 2) : "";
        if (m.empty()) m = fallback ? fallback : "failed check " + cond;
    }
    if (m.empty()) m = fallback ? fallback : "status code " + std::to_string(static_cast<int>(st.code()));
    // A message may quote a piece of the model (any bytes, a newline too): keep it one line.
    for (char &c : m)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
    return m;
}

// Runs f() and turns any C++ exception into `fail` and a message: the one place where
// exceptions stop.
template <typename R, typename F>
static R guarded(char *err, const char *what, R fail, F &&f)
{
    try {
        return f();
    }
    catch (const std::bad_alloc &) {
        set_err(err, "%s: out of memory", what);
    }
    catch (const std::exception &e) {
        set_err(err, "%s: %s", what, e.what());
    }
    catch (...) {
        set_err(err, "%s: unknown C++ exception", what);
    }
    return fail;
}

extern "C" spmc_t *spmc_load(const void *bytes, size_t n, char err[256])
{
    if (!bytes || n == 0) {
        set_err(err, "SentencePiece model is empty");
        return nullptr;
    }
    spmc_t *sp = guarded(err, "loading SentencePiece model", (spmc_t *)nullptr,
                         [] { return new spmc(); });
    if (!sp) return nullptr;
    int ok = guarded(err, "loading SentencePiece model", 0, [&] {
        spm::util::Status st = sp->proc.LoadFromSerializedProto(
            absl::string_view(static_cast<const char *>(bytes), n));
        if (!st.ok()) {
            set_err(err, "not a SentencePiece model: %s",
                    status_text(st, "its bytes do not parse as a ModelProto").c_str());
            return 0;
        }
        sp->vocab = sp->proc.GetPieceSize();
        if (sp->vocab <= 0) {
            set_err(err, "SentencePiece model has no pieces");
            return 0;
        }
        return 1;
    });
    if (!ok) {
        spmc_free(sp);
        return nullptr;
    }
    return sp;
}

extern "C" void spmc_free(spmc_t *sp)
{
    try {
        delete sp;
    }
    catch (...) {
    }
}

extern "C" int spmc_vocab_size(const spmc_t *sp)
{
    return sp ? sp->vocab : 0;
}

extern "C" void spmc_special_ids(const spmc_t *sp, spmc_special_t *out)
{
    out->unk = out->bos = out->eos = out->pad = -1;
    if (!sp) return;
    try {
        out->unk = sp->proc.unk_id();
        out->bos = sp->proc.bos_id();
        out->eos = sp->proc.eos_id();
        out->pad = sp->proc.pad_id();
    }
    catch (...) {
    }
}

extern "C" const char *spmc_id_to_piece(const spmc_t *sp, int id)
{
    if (!sp || id < 0 || id >= sp->vocab) return nullptr;
    try {
        return sp->proc.IdToPiece(id).c_str();
    }
    catch (...) {
        return nullptr;
    }
}

extern "C" long spmc_encode_ids(const spmc_t *sp, const char *text, size_t len, int *ids,
                                size_t cap, char err[256])
{
    return guarded(err, "encoding", -1L, [&]() -> long {
        std::vector<int> v;
        spm::util::Status st = sp->proc.Encode(absl::string_view(text ? text : "", len), &v);
        if (!st.ok()) {
            set_err(err, "encoding: %s", status_text(st).c_str());
            return -1;
        }
        size_t k = v.size() < cap ? v.size() : cap;
        if (k) memcpy(ids, v.data(), k * sizeof(int));
        return (long)v.size();
    });
}

extern "C" long spmc_encode_pieces(const spmc_t *sp, const char *text, size_t len, char *buf,
                                   size_t cap, size_t *need, char err[256])
{
    return guarded(err, "encoding", -1L, [&]() -> long {
        std::vector<std::string> v;
        spm::util::Status st = sp->proc.Encode(absl::string_view(text ? text : "", len), &v);
        if (!st.ok()) {
            set_err(err, "encoding: %s", status_text(st).c_str());
            return -1;
        }
        size_t total = 0;
        for (const std::string &p : v) total += p.size() + 1;
        *need = total;
        if (total <= cap) {
            char *w = buf;
            for (const std::string &p : v) {
                memcpy(w, p.c_str(), p.size() + 1);
                w += p.size() + 1;
            }
        }
        return (long)v.size();
    });
}

extern "C" long spmc_decode(const spmc_t *sp, const int *ids, size_t n, char *out, size_t cap,
                            char err[256])
{
    return guarded(err, "decoding", -1L, [&]() -> long {
        // libsentencepiece does not range-check ids on decode: check here.
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= sp->vocab) {
                set_err(err, "decoding: id %d at position %zu is outside the vocabulary [0, %d)",
                        ids[i], i, sp->vocab);
                return -1;
            }
        std::vector<int> v(ids, ids + n);
        std::string s;
        spm::util::Status st = sp->proc.Decode(v, &s);
        if (!st.ok()) {
            set_err(err, "decoding: %s", status_text(st).c_str());
            return -1;
        }
        if (cap > 0) {
            size_t k = s.size() < cap - 1 ? s.size() : cap - 1;
            memcpy(out, s.data(), k);
            out[k] = 0;
        }
        return (long)s.size();
    });
}

/* ---------------------------------------------------------------- training */

namespace {

// One sentence per line of a file; a trailing '\r' is dropped.
class FileLines : public spm::SentenceIterator {
  public:
    explicit FileLines(FILE *fp, const char *path) : fp_(fp), path_(path) { Next(); }
    ~FileLines() override { free(line_); }
    bool done() const override { return done_; }
    void Next() override
    {
        ssize_t n = getline(&line_, &cap_, fp_);
        if (n < 0) {
            done_ = true;
            if (ferror(fp_))
                status_ = spm::util::Status(spm::util::StatusCode::kDataLoss,
                                            path_ + ": read error");
            return;
        }
        while (n > 0 && (line_[n - 1] == '\n' || line_[n - 1] == '\r')) n--;
        value_.assign(line_, (size_t)n);
    }
    const std::string &value() const override { return value_; }
    spm::util::Status status() const override { return status_; }

  private:
    FILE *fp_;
    std::string path_;
    char *line_ = nullptr;
    size_t cap_ = 0;
    bool done_ = false;
    std::string value_;
    spm::util::Status status_;
};

class ArrayLines : public spm::SentenceIterator {
  public:
    ArrayLines(const char *const *lines, size_t n) : lines_(lines), n_(n) { Load(); }
    bool done() const override { return i_ >= n_; }
    void Next() override
    {
        i_++;
        Load();
    }
    const std::string &value() const override { return value_; }
    spm::util::Status status() const override { return spm::util::Status(); }

  private:
    void Load()
    {
        if (i_ < n_) value_ = lines_[i_] ? lines_[i_] : "";
    }
    const char *const *lines_;
    size_t n_, i_ = 0;
    std::string value_;
};

std::string num(double x)
{
    char b[64];
    snprintf(b, sizeof b, "%.9g", x);
    return b;
}

int check_opts(const spmc_train_opts_t *o, char *err)
{
    if (!o->model_type || (strcmp(o->model_type, "unigram") != 0 && strcmp(o->model_type, "bpe") != 0)) {
        set_err(err, "model type \"%s\" is not unigram or bpe", o->model_type ? o->model_type : "");
        return -1;
    }
    if (o->vocab_size < 8 || o->vocab_size > 1000000) {
        set_err(err, "vocabulary size %d is out of range [8, 1000000]", o->vocab_size);
        return -1;
    }
    if (!(o->character_coverage > 0 && o->character_coverage <= 1)) {
        set_err(err, "character coverage %g is not in (0, 1]", o->character_coverage);
        return -1;
    }
    if (!o->normalization || !o->normalization[0]) {
        set_err(err, "no normalization rule given");
        return -1;
    }
    if (o->num_threads < 1 || o->num_threads > 1024 || o->max_sentences < 0 ||
        o->max_sentence_length < 1) {
        set_err(err, "bad training limits (threads %d, max sentences %ld, max length %d)",
                o->num_threads, o->max_sentences, o->max_sentence_length);
        return -1;
    }
    return 0;
}

int train_here(spm::SentenceIterator *it, const spmc_train_opts_t *o, char **model,
               size_t *model_len, char *err)
{
    std::unordered_map<std::string, std::string> kw = {
        {"model_type", o->model_type},
        {"vocab_size", std::to_string(o->vocab_size)},
        {"character_coverage", num(o->character_coverage)},
        {"normalization_rule_name", o->normalization},
        {"add_dummy_prefix", o->add_dummy_prefix ? "true" : "false"},
        {"remove_extra_whitespaces", o->remove_extra_whitespaces ? "true" : "false"},
        {"byte_fallback", o->byte_fallback ? "true" : "false"},
        {"split_digits", o->split_digits ? "true" : "false"},
        {"hard_vocab_limit", o->hard_vocab_limit ? "true" : "false"},
        {"num_threads", std::to_string(o->num_threads)},
        {"input_sentence_size", std::to_string(o->max_sentences)},
        {"max_sentence_length", std::to_string(o->max_sentence_length)},
        {"unk_id", std::to_string(o->unk_id)},
        {"bos_id", std::to_string(o->bos_id)},
        {"eos_id", std::to_string(o->eos_id)},
        {"pad_id", std::to_string(o->pad_id)},
        // 2 = errors only; library code must not print. MergeSpecsFromArgs applies it
        // (a process-wide setting of libsentencepiece) before training starts.
        {"minloglevel", "2"},
    };
    if (o->user_symbols && o->user_symbols[0]) kw["user_defined_symbols"] = o->user_symbols;
    // unsigned(-1) is reserved by libsentencepiece for "seed from std::random_device".
    spm::SetRandomGeneratorSeed(o->seed == ~0u ? 0u : o->seed);
    std::string out;
    spm::util::Status st = spm::SentencePieceTrainer::Train(kw, it, &out);
    if (!st.ok()) {
        set_err(err, "training the tokenizer: %s", status_text(st).c_str());
        return -1;
    }
    if (out.empty()) {
        set_err(err, "training the tokenizer produced an empty model");
        return -1;
    }
    char *m = static_cast<char *>(malloc(out.size()));
    if (!m) {
        set_err(err, "training the tokenizer: out of memory");
        return -1;
    }
    memcpy(m, out.data(), out.size());
    *model = m;
    *model_len = out.size();
    return 0;
}

bool write_all(int fd, const void *p, size_t n)
{
    const char *c = static_cast<const char *>(p);
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        c += k;
        n -= static_cast<size_t>(k);
    }
    return true;
}

// What the trainer printed before it stopped, as one short line: its last line that is
// not the "Program terminated" banner, the source location dropped
// ("unigram_model_trainer.cc(109) [!required_chars_.empty()]" -> "failed check
// !required_chars_.empty()").
std::string last_words(const std::string &log)
{
    std::string best;
    size_t start = 0;
    while (start < log.size()) {
        size_t end = log.find('\n', start);
        if (end == std::string::npos) end = log.size();
        std::string line = log.substr(start, end - start);
        if (!line.empty() && line.find("Program terminated") == std::string::npos) best = line;
        start = end + 1;
    }
    size_t open = best.find(") ["), close = best.rfind(']');
    if (open != std::string::npos && close != std::string::npos && close > open)
        best = "failed check " + best.substr(open + 3, close - open - 3);
    for (char &c : best)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
    return best.size() > 120 ? best.substr(0, 120) : best;
}

// libsentencepiece's trainer ends the whole process when one of its CHECKs fails: it
// prints "Program terminated with an unrecoverable error." and calls exit. Captions with
// nothing to learn do that (only whitespace, say; found by fuzz_tokenizer_train). So the
// training runs in a child process that sends the model, or the error, through a pipe;
// a child that stops any other way becomes an error with the trainer's last words, and
// dalle-c goes on. The child reads the captions from its copy of the parent's memory.
int train(spm::SentenceIterator *it, const spmc_train_opts_t *o, char **model,
          size_t *model_len, char *err)
{
    *model = nullptr;
    *model_len = 0;
    if (check_opts(o, err) != 0) return -1;
    int out[2], log[2];
    if (pipe(out) != 0) {
        set_err(err, "training the tokenizer: pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe(log) != 0) {
        set_err(err, "training the tokenizer: pipe: %s", strerror(errno));
        close(out[0]);
        close(out[1]);
        return -1;
    }
    fflush(nullptr);  // or the child's exit would print what the parent had buffered
    pid_t pid = fork();
    if (pid < 0) {
        set_err(err, "training the tokenizer: fork: %s", strerror(errno));
        for (int fd : {out[0], out[1], log[0], log[1]}) close(fd);
        return -1;
    }
    if (pid == 0) {
        close(out[0]);
        close(log[0]);
        dup2(log[1], 2);
        close(log[1]);
        // The trainer's exit() runs this first, before the handlers the parent registered
        // (sanitizers, libFuzzer), which are not the child's to run.
        atexit([] { _exit(99); });
        char e[256] = "";
        char *m = nullptr;
        size_t n = 0;
        int rc = guarded(e, "training the tokenizer", -1,
                         [&] { return train_here(it, o, &m, &n, e); });
        const unsigned char status = rc == 0 ? 0 : 1;
        const uint64_t len = rc == 0 ? n : strlen(e);
        bool ok = write_all(out[1], &status, 1) && write_all(out[1], &len, sizeof len) &&
                  write_all(out[1], rc == 0 ? m : e, len);
        _exit(ok ? 0 : 98);
    }
    close(out[1]);
    close(log[1]);
    std::string data, text;
    struct pollfd fds[2] = {{out[0], POLLIN, 0}, {log[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[65536];
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (auto &f : fds) {
            if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t k = read(f.fd, buf, sizeof buf);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                close(f.fd);
                f.fd = -1;
                open_fds--;
                continue;
            }
            std::string &to = f.fd == out[0] ? data : text;
            if (&to == &data || text.size() < 65536) to.append(buf, static_cast<size_t>(k));
        }
    }
    for (auto &f : fds)
        if (f.fd >= 0) close(f.fd);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    uint64_t len = 0;
    if (data.size() >= 1 + sizeof len) memcpy(&len, data.data() + 1, sizeof len);
    if (data.size() < 1 + sizeof len || data.size() - 1 - sizeof len != len) {
        std::string why = last_words(text);
        if (WIFSIGNALED(st))
            set_err(err, "training the tokenizer: libsentencepiece's trainer died (signal %d)%s%s",
                    WTERMSIG(st), why.empty() ? "" : ": ", why.c_str());
        else
            set_err(err, "training the tokenizer: libsentencepiece's trainer stopped%s%s "
                    "(are there captions with characters to learn?)",
                    why.empty() ? "" : ": ", why.c_str());
        return -1;
    }
    const char *payload = data.data() + 1 + sizeof len;
    if (data[0] != 0) {
        set_err(err, "%.*s", static_cast<int>(len < 255 ? len : 255), payload);
        return -1;
    }
    char *m = static_cast<char *>(malloc(len ? len : 1));
    if (!m) {
        set_err(err, "training the tokenizer: out of memory");
        return -1;
    }
    memcpy(m, payload, len);
    *model = m;
    *model_len = len;
    return 0;
}

}  // namespace

extern "C" int spmc_train_file(const char *path, const spmc_train_opts_t *opts, char **model,
                               size_t *model_len, char err[256])
{
    *model = nullptr;
    *model_len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        set_err(err, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    int rc = guarded(err, "training the tokenizer", -1, [&] {
        FileLines it(fp, path);
        return train(&it, opts, model, model_len, err);
    });
    fclose(fp);
    return rc;
}

extern "C" int spmc_train_lines(const char *const *lines, size_t n, const spmc_train_opts_t *opts,
                                char **model, size_t *model_len, char err[256])
{
    *model = nullptr;
    *model_len = 0;
    return guarded(err, "training the tokenizer", -1, [&] {
        ArrayLines it(lines, n);
        return train(&it, opts, model, model_len, err);
    });
}
