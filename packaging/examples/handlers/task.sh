# task.sh: sourced by the example handlers. Reads the task (one JSON line on
# stdin) and gives the handler small helpers. POSIX sh and awk only.

# die MESSAGE [CODE [ERROR_TYPE]]: reports a failure and exits with CODE (1,
# a permanent failure, unless told otherwise; 75 is retryable). The message
# goes to stderr, and as the last stdout line the worker reads as the
# failure: {"error": MESSAGE, "error_type": ERROR_TYPE, "retryable": ...}.
# ERROR_TYPE is VALIDATION (bad input) for code 1, else HANDLER.
die() {
    _code=${2:-1}
    _type=${3:-}
    [ -n "$_type" ] || { [ "$_code" -eq 1 ] && _type=VALIDATION || _type=HANDLER; }
    _retryable=false
    [ "$_code" -ne 75 ] || _retryable=true
    printf '%s\n' "$1" >&2
    printf '{"error": %s, "error_type": "%s", "retryable": %s}\n' "$(json_str "$1")" "$_type" "$_retryable"
    exit "$_code"
}

# task_read: reads the task from stdin into TASK_FLAT (see json.awk).
task_read() {
    TASK_FLAT=$(LC_ALL=C awk -f "$HANDLERS_DIR/json.awk") || die "the task on stdin is not valid JSON"
}

# task_get PATH: prints the value at PATH (escaped form); fails when absent.
task_get() {
    printf '%s\n' "$TASK_FLAT" | LC_ALL=C awk -F '\t' -v want="$1" '
        $1 == want { sub(/^[^\t]*\t/, ""); print; found = 1; exit }
        END { exit !found }'
}

# task_param NAME [DEFAULT]: a parameter, decoded (newlines restored), or DEFAULT.
task_param() {
    _v=$(task_get "parameters.$1") || { printf '%s' "${2-}"; return 0; }
    printf '%b' "$_v"
}

# json_str TEXT: TEXT as a JSON string literal.
json_str() {
    printf '%s' "$1" | LC_ALL=C awk '
        # split and join rather than gsub: awks differ on backslashes in gsub.
        function swap(s, from, to,   parts, n, i, out) {
            n = split(s, parts, from); out = parts[1]
            for (i = 2; i <= n; i++) out = out to parts[i]
            return out
        }
        BEGIN { printf "\"" }
        { s = swap($0, "\\", "\\\\"); s = swap(s, "\"", "\\\""); s = swap(s, "\t", "\\t")
          s = swap(s, "\r", "\\r"); printf "%s%s", (NR > 1 ? "\\n" : ""), s }
        END { printf "\"" }'
}

# safe_name TEXT: TEXT fit for a file name (letters, digits, . _ - only).
safe_name() {
    printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_'
}
