"""Swaps names in a shared folder as fast as it can, for the race tests.

    flipper.py file NAME TARGET CONTENT   # NAME: a regular file (CONTENT) <-> a symlink to TARGET
    flipper.py dir NAME OTHER             # NAME <-> OTHER exchanged atomically (renameat2 RENAME_EXCHANGE)

Runs until killed; prints "go" once it has flipped once. Standard library
only (it runs as another user, with the system's python3).
"""
import ctypes
import os
import sys

RENAME_EXCHANGE = 2
AT_FDCWD = -100


def main():
    mode = sys.argv[1]
    if mode == "file":
        name, target, content = sys.argv[2], sys.argv[3], sys.argv[4].encode()
        tmp_l, tmp_r = name + ".l", name + ".r"
        first = True
        while True:
            try:
                os.unlink(tmp_l)
            except FileNotFoundError:
                pass
            os.symlink(target, tmp_l)
            os.replace(tmp_l, name)
            with open(tmp_r, "wb") as f:
                f.write(content)
            os.replace(tmp_r, name)
            if first:
                sys.stdout.write("go\n")
                sys.stdout.flush()
                first = False
    elif mode == "dir":
        a, b = sys.argv[2].encode(), sys.argv[3].encode()
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
        fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
        first = True
        while True:
            if fn(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
                e = ctypes.get_errno()
                sys.stderr.write("renameat2: %s\n" % os.strerror(e))
                sys.exit(2)
            if first:
                sys.stdout.write("go\n")
                sys.stdout.flush()
                first = False


if __name__ == "__main__":
    main()
