"""The zygote: a Lambda runtime interpreter that has imported boto3 once and forks execution environments.

Run by the runtime's own interpreter (`python -P lambda_zygote_server.py`, standard library only: it
is not importable there as part of scones). Each line on stdin asks for one environment (JSON: its
environment variables, handler, output file and, in the sandbox, the mount script); the child runs
AWS's runtime client (`python -m awslambdaric HANDLER`) as a freshly started interpreter would, with
boto3 already imported. Each line on stdout answers one request ({"id", "pid"} or {"id", "error"}) or
reports an environment's end ({"pid", "exit"}: its exit code, negative for a signal, as Popen has it).
The zygote stays single-threaded so that fork() is safe; it exits when stdin closes.
"""
import sys

STARTUP_MODULES = frozenset(sys.modules)  # what a fresh interpreter has imported before running anything

import contextlib  # noqa: E402
import ctypes  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402 (botocore imports it too)
import os  # noqa: E402
import runpy  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

COERCED = {key: value for key, value in os.environ.items() if key == "LC_CTYPE"}  # set by the interpreter itself
PRELOADED = ("boto3", "boto3.session", "botocore.session", "botocore.client", "botocore.httpsession", "s3transfer")
CLONE_NEWNS = 0x00020000
# mount(2) flags (linux/mount.h). Remounting a bind mount read-only keeps its nosuid, nodev and noexec
# (statvfs's ST_* bits of the same values), as util-linux does; the kernel keeps its atime flags.
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 0x1, 0x20, 0x1000, 0x2000, 0x4000, 0x40000
MS_KEPT_ON_REMOUNT = os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC
# botocore data every client reads, and the models of the services most functions (and the workflow's) call.
PREPARSED_DATA = ("endpoints", "partitions", "sdk-default-configuration")
PREPARSED_SERVICES = ("s3", "sagemaker-runtime")
PREPARSED_MODEL_FILES = ("service-2", "service-2.sdk-extras", "endpoint-rule-set-1")


def preload() -> list[str]:
    """Import PRELOADED; the top-level names now in sys.modules that a fresh interpreter did not have
    (a function bundling one of them would get the zygote's instead: the host starts it afresh)."""
    for name in PRELOADED:
        importlib.import_module(name)
    return sorted({name.partition(".")[0] for name in sys.modules} - {name.partition(".")[0] for name in STARTUP_MODULES})


def preparse_botocore_data() -> None:
    """Parse botocore's shared data files and PREPARSED_SERVICES' models here, once, for the children.

    A function's first client parses ~9 MB of JSON into OrderedDicts (endpoints.json, then S3's model
    and endpoint rules): most of a cold start's init once boto3 is imported. Each file parsed here is
    handed out once, to the first `JSONFileLoader.load_file` in a child that asks for that path, so the
    child gets the very object a parse of its own would give, shared with nothing; later loads, other
    files and a customer's own models (~/.aws/models, searched first) are parsed as botocore does."""
    from botocore import loaders

    loader = loaders.Loader()
    names = list(PREPARSED_DATA)
    for service in PREPARSED_SERVICES:
        version = loader.determine_latest_version(service, "service-2")
        names += [f"{service}/{version}/{kind}" for kind in PREPARSED_MODEL_FILES]
    parsed = {}
    for name in names:
        path = os.path.join(loader.BUILTIN_DATA_PATH, name)
        for extension, open_method in loaders._JSON_OPEN_METHODS.items():  # what load_file does, keeping the file name
            data = loaders.JSONFileLoader()._load_file(path + extension, open_method)
            if data is not None:
                parsed[path] = (path + extension, data)
                break
    logger = logging.getLogger(loaders.__name__)
    load_file = loaders.JSONFileLoader.load_file

    def load_preparsed_file(self, file_path):
        preparsed = parsed.pop(file_path, None)
        if preparsed is None:
            return load_file(self, file_path)
        logger.debug("Loading JSON file: %s", preparsed[0])  # as botocore logs each file it parses
        return preparsed[1]

    loaders.JSONFileLoader.load_file = load_preparsed_file


LIBC = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    arguments = [None if value is None else os.fsencode(value) for value in (source, target, fstype)]
    if LIBC.mount(*arguments, ctypes.c_ulong(flags), None if data is None else os.fsencode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def build_sandbox(layout: list[list[str]]) -> None:
    """A mount namespace of this process's own, with the layout lambda_sandbox.sandbox_layout describes:
    the mount(2) calls its shell script (`layout_script`) makes through util-linux's mount, without a shell
    and a dozen processes."""
    if LIBC.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)  # unshare --propagation private
    for operation, *arguments in layout:
        if operation == "tmpfs":
            name, target, options = arguments
            _mount(name, target, "tmpfs", 0, options)
        elif operation == "mkdir":
            os.mkdir(arguments[0])
        elif operation == "bind_ro":
            source, target = arguments
            _mount(source, target, None, MS_BIND, None)
            kept = os.statvfs(target).f_flag & MS_KEPT_ON_REMOUNT
            _mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None)
        elif operation == "move":
            source, target = arguments
            _mount(source, target, None, MS_MOVE, None)
        else:
            raise ValueError(f"unknown sandbox step {operation!r}")


def run_child(request: dict, base_path: list[str], zygote_fds: tuple[int, ...]) -> None:
    """In the forked child: become the environment described by `request`, then run awslambdaric."""
    os.setsid()  # its own process group, as Popen(start_new_session=True): killpg takes its children too
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in zygote_fds:
        os.close(fd)
    output = os.open(request["output"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(null)
    os.close(output)
    env = request["env"]
    if request.get("sandbox"):  # a mount namespace of its own, with AWS's layout in it
        build_sandbox(request["sandbox"])
        env = {**env, "PWD": request["cwd"]}  # as the layout script's shell exports it before exec'ing the runtime
    if "LC_CTYPE" in COERCED and "LC_CTYPE" not in env:
        env["LC_CTYPE"] = COERCED["LC_CTYPE"]  # the interpreter's C-locale coercion (PEP 538), as at any start
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(env)
    time.tzset()  # TZ as the function's variables set it
    runtime_host, runtime_seen = request["runtime_host"], request["runtime_seen"]
    pythonpath = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:] = [os.getcwd(), *pythonpath, *(entry.replace(runtime_host, runtime_seen, 1) for entry in base_path)]
    sys.path_importer_cache.clear()  # paths that were missing in the zygote (/opt/python, /var/task) exist now
    importlib.invalidate_caches()
    sys.executable, sys.prefix, sys.exec_prefix = (
        value.replace(runtime_host, runtime_seen, 1) for value in (sys.executable, sys.prefix, sys.exec_prefix)
    )
    sys.argv = [sys.argv[0], request["handler"]]  # run_module sets argv[0] to awslambdaric's __main__.py, as -m does
    runpy.run_module("awslambdaric", run_name="__main__", alter_sys=True)


def fork_environment(request: dict, base_path: list[str], zygote_fds: tuple[int, ...]) -> int:
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        run_child(request, base_path, zygote_fds)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def reap(reply) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        reply({"pid": pid, "exit": os.waitstatus_to_exitcode(status)})


def main() -> None:
    preloaded = preload()
    try:
        preparse_botocore_data()
    except Exception:  # a botocore that reads its data another way: the children parse it themselves
        traceback.print_exc()
    base_path = [entry for entry in sys.path if entry]

    def reply(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    reply({"ready": True, "preloaded": preloaded})
    requests, pending = sys.stdin.fileno(), b""
    while True:
        readable, _, _ = select.select([requests, wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 4096)
            reap(reply)
        if requests in readable:
            data = os.read(requests, 1 << 16)
            if not data:
                return
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                request = json.loads(line)
                try:
                    reply({"id": request["id"], "pid": fork_environment(request, base_path, (wake_read, wake_write))})
                except OSError as error:
                    reply({"id": request["id"], "error": str(error)})
            reap(reply)


if __name__ == "__main__":
    main()
