/* A folder's entries and its files' sizes and mtimes, read without holding the GIL.
 *
 * A log query lists every file of its glob on each run, the cached ones too (that is how a
 * file appended to in place is seen), and a folder of 20,000 small logs costs 20,000 `stat`s.
 * In Python the walk builds an object per entry and each lookup resolves the whole path; here
 * a folder is read with `readdir` and its files looked up with `fstatat` relative to it, and
 * threads of `_files` run these side by side. `_files` falls back to Python and Arrow when
 * this module was not built.
 *
 *   entries(folder) -> (names, kinds, odd)
 *       The names in the folder (without "." and ".."), sorted by their bytes; kinds holds a
 *       byte per name: 0 a plain file, 1 a folder, 2 a symbolic link, 3 anything else (or
 *       gone by the time its type was asked). `odd` is true when a name is not UTF-8 (its
 *       bytes are kept as Python does, with surrogates): Python orders such names otherwise.
 *       Raises OSError when the folder cannot be read.
 *
 *   stats(folder, names) -> (sizes, mtimes)
 *       Each name's size and modification time in nanoseconds, looked up without following
 *       a link; -1 and -1 for a name that is gone or not a plain file (or all of them when
 *       the folder cannot be opened).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PLAIN = 0, FOLDER = 1, LINK = 2, OTHER = 3 };

typedef struct {
    char *name;
    char kind;
} entry_t;

static int by_name(const void *a, const void *b) {
    return strcmp(((const entry_t *)a)->name, ((const entry_t *)b)->name);
}

static void free_entries(entry_t *entries, size_t count) {
    for (size_t i = 0; i < count; i++) free(entries[i].name);
    free(entries);
}

static char kind_of_mode(mode_t mode) {
    if (S_ISREG(mode)) return PLAIN;
    if (S_ISDIR(mode)) return FOLDER;
    if (S_ISLNK(mode)) return LINK;
    return OTHER;
}

/* Reads the folder open at `fd` into `*out` (sorted); 0, or an errno. Runs without the GIL. */
static int read_folder(int fd, entry_t **out, size_t *out_count) {
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int error = errno;
        close(fd);
        return error;
    }
    entry_t *entries = NULL;
    size_t count = 0, room = 0;
    int error = 0;
    struct dirent *item;
    for (;;) {
        errno = 0;
        item = readdir(dir);
        if (item == NULL) {
            error = errno;
            break;
        }
        const char *name = item->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
        if (count == room) {
            size_t grown_room = room ? room * 2 : 64;
            entry_t *grown = realloc(entries, grown_room * sizeof(entry_t));
            if (grown == NULL) {
                error = ENOMEM;
                break;
            }
            entries = grown;
            room = grown_room;
        }
        entry_t *entry = &entries[count];
        entry->name = strdup(name);
        if (entry->name == NULL) {
            error = ENOMEM;
            break;
        }
        count++;
        switch (item->d_type) {
        case DT_REG: entry->kind = PLAIN; break;
        case DT_DIR: entry->kind = FOLDER; break;
        case DT_LNK: entry->kind = LINK; break;
        case DT_UNKNOWN: {  /* some file systems do not say: ask */
            struct stat info;
            entry->kind = fstatat(dirfd(dir), name, &info, AT_SYMLINK_NOFOLLOW) == 0
                              ? kind_of_mode(info.st_mode)
                              : OTHER;
            break;
        }
        default: entry->kind = OTHER;
        }
    }
    closedir(dir);
    if (error) {
        free_entries(entries, count);
        return error;
    }
    qsort(entries, count, sizeof(entry_t), by_name);
    *out = entries;
    *out_count = count;
    return 0;
}

static PyObject *entries(PyObject *module, PyObject *folder) {
    PyObject *encoded;
    if (!PyUnicode_FSConverter(folder, &encoded)) return NULL;
    entry_t *found = NULL;
    size_t count = 0;
    int error;
    Py_BEGIN_ALLOW_THREADS
    int fd = open(PyBytes_AS_STRING(encoded), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    error = fd < 0 ? errno : read_folder(fd, &found, &count);
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    if (error) {
        errno = error;
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, folder);
    }
    PyObject *names = PyList_New((Py_ssize_t)count);
    PyObject *kinds = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)count);
    if (names == NULL || kinds == NULL) goto fail;
    char *kind_bytes = PyBytes_AS_STRING(kinds);
    int odd = 0;
    for (size_t i = 0; i < count; i++) {
        PyObject *name = PyUnicode_DecodeFSDefault(found[i].name);
        if (name == NULL) goto fail;
        if (!odd && PyUnicode_MAX_CHAR_VALUE(name) >= 0xDC80) {
            /* A byte that is not UTF-8 becomes a surrogate from U+DC80 to U+DCFF. */
            Py_ssize_t length = PyUnicode_GET_LENGTH(name);
            int unicode_kind = PyUnicode_KIND(name);
            const void *data = PyUnicode_DATA(name);
            for (Py_ssize_t at = 0; at < length; at++) {
                Py_UCS4 code = PyUnicode_READ(unicode_kind, data, at);
                if (code >= 0xDC80 && code <= 0xDCFF) {
                    odd = 1;
                    break;
                }
            }
        }
        PyList_SET_ITEM(names, (Py_ssize_t)i, name);
        kind_bytes[i] = found[i].kind;
    }
    free_entries(found, count);
    return Py_BuildValue("(NNO)", names, kinds, odd ? Py_True : Py_False);
fail:
    free_entries(found, count);
    Py_XDECREF(names);
    Py_XDECREF(kinds);
    return NULL;
}

static PyObject *stats(PyObject *module, PyObject *args) {
    PyObject *folder, *names;
    if (!PyArg_ParseTuple(args, "OO!:stats", &folder, &PyList_Type, &names)) return NULL;
    PyObject *encoded_folder;
    if (!PyUnicode_FSConverter(folder, &encoded_folder)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(names);
    PyObject *encoded = PyTuple_New(count);  /* keeps each name's bytes alive */
    const char **raw = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(char *));
    long long *sizes = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(long long));
    long long *mtimes = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(long long));
    PyObject *size_list = NULL, *mtime_list = NULL;
    if (encoded == NULL || raw == NULL || sizes == NULL || mtimes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *bytes;
        if (!PyUnicode_FSConverter(PyList_GET_ITEM(names, i), &bytes)) goto done;
        PyTuple_SET_ITEM(encoded, i, bytes);
        raw[i] = PyBytes_AS_STRING(bytes);
    }
    Py_BEGIN_ALLOW_THREADS
    int fd = open(PyBytes_AS_STRING(encoded_folder), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (Py_ssize_t i = 0; i < count; i++) {
        struct stat info;
        if (fd >= 0 && fstatat(fd, raw[i], &info, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(info.st_mode)) {
            sizes[i] = (long long)info.st_size;
            mtimes[i] = (long long)info.st_mtim.tv_sec * 1000000000LL + info.st_mtim.tv_nsec;
        } else {
            sizes[i] = -1;
            mtimes[i] = -1;
        }
    }
    if (fd >= 0) close(fd);
    Py_END_ALLOW_THREADS
    size_list = PyList_New(count);
    mtime_list = PyList_New(count);
    if (size_list == NULL || mtime_list == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *size = PyLong_FromLongLong(sizes[i]);
        if (size == NULL) goto done;
        PyList_SET_ITEM(size_list, i, size);
        PyObject *mtime = PyLong_FromLongLong(mtimes[i]);
        if (mtime == NULL) goto done;
        PyList_SET_ITEM(mtime_list, i, mtime);
    }
    PyObject *result = PyTuple_Pack(2, size_list, mtime_list);
    Py_DECREF(size_list);
    Py_DECREF(mtime_list);
    size_list = mtime_list = NULL;
    Py_DECREF(encoded_folder);
    Py_XDECREF(encoded);
    PyMem_Free(raw);
    PyMem_Free(sizes);
    PyMem_Free(mtimes);
    return result;
done:
    Py_DECREF(encoded_folder);
    Py_XDECREF(encoded);
    Py_XDECREF(size_list);
    Py_XDECREF(mtime_list);
    PyMem_Free(raw);
    PyMem_Free(sizes);
    PyMem_Free(mtimes);
    return NULL;
}

static PyMethodDef methods[] = {
    {"entries", entries, METH_O,
     "entries(folder) -> (names, kinds, odd): the folder's names sorted by their bytes, a kind "
     "byte per name (0 plain file, 1 folder, 2 link, 3 other), whether a name is not UTF-8."},
    {"stats", stats, METH_VARARGS,
     "stats(folder, names) -> (sizes, mtimes): each plain file's size and mtime in ns, "
     "-1 and -1 for a name gone or not a plain file."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "_liststat",
    "A folder's entries and its files' sizes and mtimes, read without holding the GIL.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__liststat(void) { return PyModule_Create(&module_definition); }
