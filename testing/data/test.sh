#!/usr/bin/env bash
# Does what a QA camera does, with curl only: uploads every sample photo, posts its operations file, waits for every
# conversion to finish, downloads every output into OUT (default: a new temporary folder) and prints one line per
# output. Exits non-zero if any job failed. API (default http://localhost:8080) says where the cluster listens, API_KEY
# its key if it has one.
set -euo pipefail
api=${API:-http://localhost:8080}
# The cluster's API key, when it has one: ./run.sh prints it.
auth=()
[ -n "${API_KEY:-}" ] && auth=(-H "Authorization: Bearer $API_KEY")
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

field() { # NAME < JSON: the first value of that field, unquoted
  grep -o "\"$1\":\(\"[^\"]*\"\|[^,}]*\)" | head -n 1 | cut -d: -f2- | sed 's/^"//; s/"$//'
}

conversions=()
for dir in "$here"/*/; do
  subject=$(basename "$dir")
  photo=$(find "$dir" -maxdepth 1 -type f ! -name operations | head -n 1)
  id=$(curl -fsS "${auth[@]}" -F "file=@$photo" -F "source=test-sh" "$api/photos" | field id)
  conversion=$(curl -fsS "${auth[@]}" --data-binary "@$dir/operations" -H 'Content-Type: text/plain' "$api/photos/$id/operations" | field id)
  conversions+=("$subject/$conversion")
done

failed=0
for entry in "${conversions[@]}"; do
  subject=${entry%/*}
  for _ in $(seq 600); do
    body=$(curl -fsS "${auth[@]}" "$api/conversions/${entry#*/}")
    case $(field status <<<"$body") in done | failed) break ;; esac
    sleep 0.1
  done
  # One job per line: the objects of the "jobs" list.
  while read -r job; do
    name=$(field name <<<"$job")
    if [ "$(field status <<<"$job")" = done ]; then
      file="$out/$subject-$name"
      type=$(curl -fsS "${auth[@]}" -o "$file" -w '%{content_type}' "$api$(field output <<<"$job")")
      mv "$file" "$file.${type#image/}"
      printf '%-24s done    %s (%s bytes)\n' "$subject/$name" "$file.${type#image/}" "$(wc -c <"$file.${type#image/}")"
    else
      printf '%-24s %-7s %s\n' "$subject/$name" "$(field status <<<"$job")" "$(field error <<<"$job")"
      failed=1
    fi
  done < <(sed 's/.*"jobs":\[{//; s/}\]}$//; s/},{/\n/g' <<<"$body")
done
exit $failed
