#!/usr/bin/env python3
"""The error and warning messages lfg raises, from its sources.

    python3 scripts/messages.py            write doc/messages.md
    python3 scripts/messages.py --check    fail if doc/messages.md is not what
                                           the sources give, or if a message
                                           quoted in doc/*.md as an error is
                                           not one the sources raise

Sources: every ereport(...) of src/*.c at a level other than DEBUG, LOG,
INFO or NOTICE, with its errcode(s) and errmsg format(s); every
lfg_error(err, LFG_E..., hint, "format", ...) of src/core/*.c, with the
SQLSTATE LfgErrcode (src/lfg.c) gives its status; every RAISE EXCEPTION or
RAISE WARNING of the SQL scripts, with its USING ERRCODE. SQLSTATEs come from
PostgreSQL's errcodes.txt ($PG_CONFIG --sharedir, PG_CONFIG defaulting to
pg_config).

A quoted message in the docs is a `backquoted` text that starts with a
lower-case letter, has at least three words and stands on a line that names
a SQLSTATE (five characters such as 22023) or a condition name (such as
invalid_parameter_value). It must match a source format in which each
placeholder (%d, %s, %.15g, ... in C; % in PL/pgSQL) stands for any text;
the docs may write a placeholder as any text too (N, X, "name", ...).
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "doc", "messages.md")
SQL_FILES = ["lfg--0.1.0.sql", "lfg--0.1.0--0.2.0.sql"]
DOCS = ["doc/reference.md", "doc/operations.md", "doc/serving.md", "doc/lfg.md", "README.md"]


def errcodes():
    """ERRCODE_X and condition names -> SQLSTATE, from errcodes.txt"""
    pg_config = os.environ.get("PG_CONFIG", "pg_config")
    share = subprocess.run([pg_config, "--sharedir"], check=True, capture_output=True,
                           text=True).stdout.strip()
    macros, names = {}, {}
    with open(os.path.join(share, "errcodes.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and len(parts[0]) == 5 and parts[1] in ("E", "W", "S"):
                macros[parts[2]] = parts[0]
                if len(parts) >= 4:
                    names[parts[3]] = parts[0]
    return macros, names


def balanced(text, start):
    """The text between the parenthesis at start and its match"""
    depth, i, quote = 0, start, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
        i += 1
    raise ValueError("unbalanced parenthesis at %d" % start)


def split_top(args):
    """Split a C argument list at its top-level commas"""
    out, depth, cur, quote, i = [], 0, "", None, 0
    while i < len(args):
        c = args[i]
        if quote:
            cur += c
            if c == "\\":
                cur += args[i + 1]
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
            cur += c
        elif c in "([{":
            depth += 1
            cur += c
        elif c in ")]}":
            depth -= 1
            cur += c
        elif c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    if cur.strip():
        out.append(cur.strip())
    return out


C_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def c_formats(expr):
    """The format strings of a C expression: adjacent literals concatenate,
    the branches of a conditional are separate formats"""
    formats = []
    for branch in re.split(r"[?:](?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", expr):
        lits = C_STRING.findall(branch)
        if lits:
            s = "".join(lits)
            s = s.replace('\\"', '"').replace("\\\\", "\\").replace("\\n", " ")
            formats.append(s)
    return formats


def int64_formats(expr):
    """INT64_FORMAT and friends between literals are formats too"""
    return re.sub(r"\bU?INT64_FORMAT\b", '"%lld"', expr)


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group(0)), text, flags=re.S)


def from_c(macros):
    rows = []
    lfg_c = open(os.path.join(ROOT, "src", "lfg.c")).read()
    status_code = dict(re.findall(r"case (LFG_E\w+):\s*return (ERRCODE_\w+);", lfg_c))
    for sub in ("src", "src/core"):
        d = os.path.join(ROOT, sub)
        for name in sorted(os.listdir(d)):
            if not name.endswith(".c"):
                continue
            path = os.path.join(sub, name)
            text = strip_comments(open(os.path.join(ROOT, path)).read())
            for m in re.finditer(r"\bereport\s*\(", text):
                body = balanced(text, m.end() - 1)
                args = split_top(body)
                level = args[0]
                if not re.search(r"\b(ERROR|FATAL|PANIC|WARNING|level)\b", level):
                    continue
                codes = re.findall(r"ERRCODE_\w+", body)
                msg = re.search(r"\berrmsg\s*\(", body)
                if msg is None:
                    continue
                fmt_expr = int64_formats(split_top(balanced(body, msg.end() - 1))[0])
                for fmt in c_formats(fmt_expr):
                    if fmt == "%s":
                        continue        # a core message passed through
                    states = sorted({macros[c] for c in codes if c in macros}) or ["XX000"]
                    rows.append((", ".join(states), fmt, path))
            for m in re.finditer(r"\blfg_error\s*\(", text):
                args = split_top(balanced(text, m.end() - 1))
                statuses = re.findall(r"LFG_E\w+", args[1]) if len(args) >= 4 else []
                if not statuses:
                    continue
                states = [macros.get(status_code.get(st, ""), "XX000") for st in statuses]
                formats = c_formats(int64_formats(args[3]))
                for j, fmt in enumerate(formats):
                    # cond ? LFG_EA : LFG_EB with cond ? "a" : "b": paired
                    state = states[j] if len(states) == len(formats) else ", ".join(sorted(set(states)))
                    rows.append((state, fmt, path))
    return rows


def from_sql(names):
    rows = []
    raise_re = re.compile(r"RAISE\s+(EXCEPTION|WARNING)\s+'((?:[^']|'')*)'(.*?);", re.S)
    for path in SQL_FILES:
        text = open(os.path.join(ROOT, path)).read()
        for m in raise_re.finditer(text):
            code = re.search(r"ERRCODE\s*=\s*'(\w+)'", m.group(3))
            state = names.get(code.group(1), code.group(1)) if code else "P0001"
            rows.append((state, m.group(2).replace("''", "'"), path))
    return rows


def table(rows):
    seen, lines = set(), []
    for state, fmt, path in sorted(rows, key=lambda r: (r[0], r[1].lower(), r[2])):
        if (state, fmt, path) in seen:
            continue
        seen.add((state, fmt, path))
        cell = fmt.replace("|", "\\|").replace("`", "'")
        lines.append("| %s | `%s` | %s |" % (state, cell, path))
    return ("# Messages\n\n"
            "Every error and warning message lfg raises, with its SQLSTATE and the file that\n"
            "raises it, generated from the sources by `python3 scripts/messages.py` (do not\n"
            "edit: `scripts/messages.py --check`, run by `scripts/test.sh`, fails when this\n"
            "table and the sources differ). `%d`, `%s`, `%g` and `%.15g` (C) and `%` (PL/pgSQL)\n"
            "stand for a value. What each message means, and its hint, is in\n"
            "[reference.md](reference.md) and [operations.md](operations.md).\n\n"
            "| SQLSTATE | message | raised in |\n| --- | --- | --- |\n" + "\n".join(lines) + "\n")


def pattern(fmt):
    """A source format as a regular expression: placeholders match anything"""
    out, i = "", 0
    while i < len(fmt):
        m = re.match(r"%(?:%|[-+ #0]*\d*(?:\.\d+)?(?:ll|l|z|h)?[diouxXeEfgGcsp]|" + "INT64_FORMAT)", fmt[i:])
        if fmt[i] == "%" and m and m.group(0) != "%%":
            out += ".+"
            i += len(m.group(0))
        elif fmt[i] == "%":
            out += ".+"          # PL/pgSQL's %
            i += 1
        else:
            out += re.escape(fmt[i])
            i += 1
    return re.compile(out + r"\Z", re.S)


# PostgreSQL's own messages the docs quote (a cancel, a timeout)
POSTGRES_MESSAGES = {"canceling statement due to user request",
                     "canceling statement due to statement timeout"}


def normal(text, source):
    """A message with every value (a placeholder, a number, a single capital
    letter, a quoted word) written #"""
    if source:
        text = re.sub(r"%(?:[-+ #0]*\d*(?:\.\d+)?(?:ll|l|z|h)?[diouxXeEfgGcsp])?", "#", text)
    text = re.sub(r'"[^"]*"', '"#"', text)
    text = re.sub(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])", "#", text)
    return re.sub(r"\b[A-Z]\b", "#", text)


def documented(names):
    """Messages quoted in the docs on a line that names a SQLSTATE or condition"""
    cond = re.compile(r"\b(?:[0-9][0-9A-Z]{4}|" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")
    found = []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc)) as f:
            for n, line in enumerate(f, 1):
                if not cond.search(line):
                    continue
                for m in re.finditer(r"`([^`]+)`", line):
                    q = m.group(1)
                    # `a` / `b`: fragments of one message, not messages
                    if line[:m.start()].rstrip().endswith("/"):
                        continue
                    if re.match(r"[a-z]", q) and len(q.split()) >= 3 and not re.search(r"[=;]|\w\(", q):
                        found.append((doc, n, q))
    return found


def main():
    macros, names = errcodes()
    rows = from_c(macros) + from_sql(names)
    text = table(rows)
    if "--check" not in sys.argv:
        with open(OUT, "w") as f:
            f.write(text)
        print("messages: %d messages written to doc/messages.md" % len(rows))
        return 0
    failed = False
    current = open(OUT).read() if os.path.exists(OUT) else ""
    if current != text:
        import difflib
        sys.stderr.write("messages: doc/messages.md differs from the sources (python3 scripts/messages.py):\n")
        sys.stderr.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                   "doc/messages.md", "from the sources"))
        failed = True
    pats = [pattern(fmt) for _, fmt, _ in rows]
    norms = [normal(fmt, True) for _, fmt, _ in rows]
    docs = documented(names)
    for doc, n, q in docs:
        if q in POSTGRES_MESSAGES or any(p.match(q) for p in pats):
            continue
        # a documented "..." ends a message: its start must be a source's
        if q.endswith("...") and any(s.startswith(normal(q[:-3], False).rstrip()) for s in norms):
            continue
        if True:
            sys.stderr.write("messages: %s:%d quotes `%s`, which no source raises\n" % (doc, n, q))
            failed = True
    if failed:
        return 1
    print("messages: doc/messages.md matches the %d messages of the sources; the %d messages quoted "
          "in the docs are all raised by them" % (len(rows), len(docs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
