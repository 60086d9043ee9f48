#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller in one JVM) for `make demo`, `make test` and the CLI.
# The broker JARs come from Maven Central through deploy/kafka/pom.xml: no tarball, no Docker.
#
# Usage: kafka.sh {fetch|start|stop|status}
#
# Environment:
#   KAFKA_STATE_DIR         required for start/stop/status; holds data/, server.properties, log4j.properties,
#                           kafka.log, kafka.pid, cluster.id
#   KAFKA_PORT              PLAINTEXT listener port (default 9092)
#   KAFKA_CONTROLLER_PORT   KRaft controller port (default KAFKA_PORT+1)
#   KAFKA_HEAP              JVM heap flags (default "-Xmx512m -Xms256m")
#   KAFKA_LIBS              broker JARs (default ${XDG_CACHE_HOME:-$HOME/.cache}/fleetlog/kafka-3.9.1/libs)
#   KAFKA_START_TIMEOUT     seconds to wait for the broker (default 90)
#   KAFKA_EXTRA_PROPERTIES  optional file appended to server.properties (SASL/TLS listeners, overrides)
#   KAFKA_SCRAM_USERS       SCRAM credentials created when storage is formatted, ';'-separated, e.g.
#                           "SCRAM-SHA-512=[name=admin,password=secret]" (KRaft creates them only at format time)
#   KAFKA_JVM_FLAGS         JVM flags besides the heap (default: serial GC, C1 JIT only; see JVM_FLAGS below)
#   KAFKA_CDS               1 (default): record and use a class-data archive next to KAFKA_LIBS; 0: don't
#   JAVA_HOME               optional; otherwise `java` from PATH
#
# `status` prints "running pid=<pid> bootstrap=127.0.0.1:<port>" (exit 0), or "starting pid=<pid> ..." while
# the process lives but does not serve yet, or "stopped" (both exit 1).
# Exit codes: 0 ok; 1 not running, or start/stop failed; 2 usage/config error; 3 java or mvn missing.
# Linux only (setsid, flock, /proc, GNU stat).
set -euo pipefail

readonly KAFKA_VERSION=3.9.1
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly POM="$SCRIPT_DIR/pom.xml"
SELF="$SCRIPT_DIR/$(basename -- "${BASH_SOURCE[0]}")"
readonly SELF
# JARs that prove a complete fetch (the directory is moved into place atomically, so one check would do).
readonly REQUIRED_JARS=("kafka_2.13-$KAFKA_VERSION.jar" "reload4j-1.2.25.jar" "slf4j-reload4j-1.7.36.jar")

PORT_GIVEN=${KAFKA_PORT:+1}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_HEAP=${KAFKA_HEAP:--Xmx512m -Xms256m}
KAFKA_LIBS=${KAFKA_LIBS:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetlog/kafka-$KAFKA_VERSION/libs}
[[ $KAFKA_LIBS == /* ]] || KAFKA_LIBS=$PWD/$KAFKA_LIBS
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_EXTRA_PROPERTIES=${KAFKA_EXTRA_PROPERTIES:-}
KAFKA_SCRAM_USERS=${KAFKA_SCRAM_USERS:-}
KAFKA_CDS=${KAFKA_CDS:-1}
CACHE_DIR=$(dirname -- "$KAFKA_LIBS")

# Start-up is dominated by JIT and class loading, not by Kafka itself: C1 only and a serial GC start the JVM
# markedly faster on small machines, and a single local broker never needs C2's peak throughput or G1's pauses.
read -r -a JVM_FLAGS <<<"${KAFKA_JVM_FLAGS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"

usage() {
    cat >&2 <<EOF
usage: $(basename -- "$0") {fetch|start|stop|status}
  fetch   download the Kafka $KAFKA_VERSION JARs into \$KAFKA_LIBS and record a class-data archive (once)
  start   start a single-node KRaft broker in \$KAFKA_STATE_DIR and print its bootstrap address
  stop    stop it (SIGTERM, then SIGKILL after 20 s)
  status  print "running pid=<pid> bootstrap=127.0.0.1:<port>" (exit 0), else "starting pid=..." or
          "stopped" (exit 1); without KAFKA_PORT, the port comes from the state dir
EOF
    exit 2
}

die() {
    local code=$1
    shift
    printf 'kafka.sh: %s\n' "$*" >&2
    exit "$code"
}

missing_tool() {
    die 3 "'$1' not found on PATH. Install Java 17 and Maven, e.g. on Debian/Ubuntu:" \
        "sudo apt-get install openjdk-17-jre-headless maven"
}

java_bin() {
    if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        missing_tool java
    fi
}

check_port() {
    if ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > 65535)); then
        die 2 "invalid port: '$1'"
    fi
}

libs_complete() {
    local jar
    for jar in "${REQUIRED_JARS[@]}"; do
        [[ -f $KAFKA_LIBS/$jar ]] || return 1
    done
}

fetch_libs() {
    java_bin >/dev/null
    command -v mvn >/dev/null 2>&1 || missing_tool mvn
    local tmp
    mkdir -p -- "$CACHE_DIR"
    # Serialise concurrent fetches (parallel test runs); the loser finds the JARs already there.
    exec 8>"$CACHE_DIR/.fetch.lock"
    flock 8
    if libs_complete; then
        exec 8>&-
        return 0
    fi
    # Download next to the target (same filesystem) and rename at the end: an interrupted fetch leaves no half dir.
    tmp=$(mktemp -d -- "$CACHE_DIR/.libs.XXXXXX")
    # shellcheck disable=SC2064  # expand $tmp now: it is local
    trap "rm -rf -- '$tmp'" EXIT
    trap 'exit 130' INT TERM
    echo "kafka.sh: fetching the Kafka $KAFKA_VERSION JARs from Maven Central into $KAFKA_LIBS" >&2
    if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
        cat -- "$tmp/mvn.log" >&2
        die 1 "mvn could not fetch the Kafka JARs (is Maven Central reachable?)"
    fi
    rm -rf -- "$KAFKA_LIBS"
    chmod 755 -- "$tmp/libs"
    mv -T -- "$tmp/libs" "$KAFKA_LIBS"
    rm -rf -- "$tmp"
    trap - EXIT INT TERM
    exec 8>&-
}

# Path of the class-data-sharing archive for this JVM and these JARs. Both are part of the name, so a JDK
# upgrade or a new fetch makes a new archive instead of silently using a stale one (the JVM would ignore it).
cds_archive() {
    local java key
    java=$(java_bin 2>/dev/null) && java=$(readlink -f -- "$java") || return 1
    key=$(stat -L -c '%n %s %Y' -- "$java" "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" 2>/dev/null | cksum) ||
        return 1
    printf '%s/kafka-cds-%s.jsa\n' "$CACHE_DIR" "${key%% *}"
}

free_port_pair() {
    local port i
    for ((i = 0; i < 50; i++)); do
        port=$((20000 + RANDOM % 12000)) # below Linux's ephemeral range, where free_port() picks
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
            ! (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    return 1
}

# True if the archive exists, or recording it failed less than a day ago (a transient failure is retried later).
cds_settled() {
    [[ -f $1 ]] || [[ -f $1.failed && -n $(find "$1.failed" -mmin -1440 2>/dev/null) ]]
}

# Most of a broker's start-up is the JVM loading and verifying ~6000 classes. A static AppCDS archive maps them
# in pre-parsed and cuts a fresh start from ~3 s to ~1.7 s on 2 cores. It is built once: a throwaway broker
# records the classes it loads (-XX:DumpLoadedClassList, written as they load, so no clean exit is needed), then
# `java -Xshare:dump` writes the archive. Best effort: a failure is remembered for a day (starts do not retry it)
# and brokers run without the archive; a stale archive is ignored by the JVM (it checks JDK and JAR identities).
ensure_cds() {
    [[ $KAFKA_CDS == 1 && -z ${KAFKA_CDS_CLASSLIST:-} ]] || return 0
    local archive java state port tmp ok=0
    archive=$(cds_archive) || return 0
    cds_settled "$archive" && return 0
    exec 8>"$CACHE_DIR/.fetch.lock"
    flock 8
    if cds_settled "$archive"; then
        exec 8>&-
        return 0
    fi
    java=$(java_bin)
    echo "kafka.sh: recording a class-data archive to speed up broker starts (once, ~15 s)" >&2
    state=$(mktemp -d -- "$CACHE_DIR/.cds-run.XXXXXX")
    tmp="$state/kafka.jsa"
    # On Ctrl-C, stop the throwaway broker too: it runs in its own session, so the signal does not reach it.
    local cleanup
    printf -v cleanup 'KAFKA_STATE_DIR=%q bash %q stop >/dev/null 2>&1; rm -rf -- %q' "$state/broker" "$SELF" "$state"
    # shellcheck disable=SC2064  # expanded now on purpose
    trap "$cleanup" EXIT
    trap 'exit 130' INT TERM
    if port=$(free_port_pair) &&
        KAFKA_STATE_DIR=$state/broker KAFKA_PORT=$port KAFKA_CONTROLLER_PORT=$((port + 1)) KAFKA_LIBS=$KAFKA_LIBS \
            KAFKA_EXTRA_PROPERTIES='' KAFKA_CDS_CLASSLIST=$state/classes.lst bash "$SELF" start >/dev/null 2>&1 &&
        KAFKA_STATE_DIR=$state/broker bash "$SELF" stop >/dev/null 2>&1 &&
        "$java" -Xshare:dump "${JVM_FLAGS[@]}" -XX:SharedClassListFile="$state/classes.lst" \
            -XX:SharedArchiveFile="$tmp" -cp "$KAFKA_LIBS/*" >"$state/dump.log" 2>&1 &&
        "$java" "${JVM_FLAGS[@]}" -Xshare:on -XX:SharedArchiveFile="$tmp" -cp "$KAFKA_LIBS/*" -version \
            >/dev/null 2>&1; then
        rm -f -- "$CACHE_DIR"/kafka-cds-*.jsa "$CACHE_DIR"/kafka-cds-*.jsa.failed
        mv -f -- "$tmp" "$archive" && ok=1
    fi
    if ((!ok)); then
        : >"$archive.failed"
        echo "kafka.sh: could not record the class-data archive; brokers will start without it" >&2
    fi
    eval "$cleanup"
    trap - EXIT INT TERM
    exec 8>&-
}

cmd_fetch() {
    libs_complete || fetch_libs
    ensure_cds
}

# JVM flags for both the storage tool and the broker: the fast-start flags plus the class-data archive.
jvm_flags() {
    JVM=("${JVM_FLAGS[@]}")
    local archive
    if [[ -n ${KAFKA_CDS_CLASSLIST:-} ]]; then
        [[ $1 == broker ]] && JVM+=(-XX:DumpLoadedClassList="$KAFKA_CDS_CLASSLIST")
    elif [[ $KAFKA_CDS == 1 ]] && archive=$(cds_archive) && [[ -f $archive ]]; then
        JVM+=(-XX:SharedArchiveFile="$archive")
    fi
    return 0
}

require_state_dir() {
    [[ -n ${KAFKA_STATE_DIR:-} ]] || die 2 "KAFKA_STATE_DIR is not set"
    mkdir -p -- "$KAFKA_STATE_DIR"
    KAFKA_STATE_DIR=$(cd -- "$KAFKA_STATE_DIR" && pwd -P)
    PID_FILE="$KAFKA_STATE_DIR/kafka.pid"
    LOG_FILE="$KAFKA_STATE_DIR/kafka.log"
}

# A zombie (exited, not yet reaped: possible under a non-reaping PID 1 in containers) counts as dead.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    if [[ -r /proc/$1/stat ]] && stat=$(<"/proc/$1/stat") 2>/dev/null; then
        stat=${stat##*) }
        [[ ${stat:0:1} != Z ]] || return 1
    fi
}

# Prints the broker's pid if the pid file names a live process that is our broker (guards against pid reuse).
broker_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "kafka.Kafka $KAFKA_STATE_DIR/server.properties" || return 1
    fi
    printf '%s\n' "$pid"
}

# The PLAINTEXT port in the state dir's server.properties (the running broker's, if one runs).
configured_port() {
    [[ -f $KAFKA_STATE_DIR/server.properties ]] || return 1
    sed -n 's|^advertised\.listeners=PLAINTEXT://127\.0\.0\.1:\([0-9]*\).*|\1|p' -- \
        "$KAFKA_STATE_DIR/server.properties"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null
}

new_cluster_id() {
    # 16 random bytes, URL-safe base64 without padding (22 chars); Kafka rejects ids that start with '-'.
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [[ ${#id} -eq 22 && $id != -* ]] && break
    done
    printf '%s\n' "$id"
}

write_configs() {
    local data="$KAFKA_STATE_DIR/data"
    cat >"$KAFKA_STATE_DIR/server.properties" <<EOF
# Written by deploy/kafka/kafka.sh on every start; put overrides in KAFKA_EXTRA_PROPERTIES.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=4
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
log.retention.hours=168
EOF
    if [[ -n $KAFKA_EXTRA_PROPERTIES ]]; then
        [[ -r $KAFKA_EXTRA_PROPERTIES ]] || die 2 "KAFKA_EXTRA_PROPERTIES is not a readable file: $KAFKA_EXTRA_PROPERTIES"
        printf '\n# From %s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$KAFKA_STATE_DIR/server.properties"
        cat -- "$KAFKA_EXTRA_PROPERTIES" >>"$KAFKA_STATE_DIR/server.properties"
    fi
    cat >"$KAFKA_STATE_DIR/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

format_storage() {
    local java=$1 cluster_id meta="$KAFKA_STATE_DIR/data/meta.properties"
    if [[ -f $meta ]]; then
        # Formatted already: no second JVM (--ignore-formatted would skip it anyway); keep cluster.id truthful.
        if [[ ! -s $KAFKA_STATE_DIR/cluster.id ]]; then
            sed -n 's/^cluster\.id=//p' -- "$meta" >"$KAFKA_STATE_DIR/cluster.id"
        fi
        return 0
    fi
    if [[ ! -s $KAFKA_STATE_DIR/cluster.id ]]; then
        new_cluster_id >"$KAFKA_STATE_DIR/cluster.id"
    fi
    cluster_id=$(<"$KAFKA_STATE_DIR/cluster.id")
    jvm_flags format
    local scram=() user
    if [[ -n $KAFKA_SCRAM_USERS ]]; then
        IFS=';' read -r -a users <<<"$KAFKA_SCRAM_USERS"
        for user in "${users[@]}"; do scram+=(--add-scram "$user"); done
    fi
    if ! "$java" "${JVM[@]}" -Xmx256m -Dlog4j.configuration="file:$KAFKA_STATE_DIR/log4j.properties" \
        -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$KAFKA_STATE_DIR/server.properties" --ignore-formatted "${scram[@]}" >>"$LOG_FILE" 2>&1; then
        tail -n 30 -- "$LOG_FILE" >&2
        die 1 "formatting the storage in $KAFKA_STATE_DIR/data failed (log above)"
    fi
}

# Waits until the broker has logged that it started and accepts TCP connections; on timeout or death, kills it.
wait_ready() {
    local pid=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    until grep -qF "Kafka Server started" -- "$LOG_FILE" 2>/dev/null && port_open; do
        if ! alive "$pid"; then
            tail -n 30 -- "$LOG_FILE" >&2
            rm -f -- "$PID_FILE"
            die 1 "the broker exited during start-up (log above, full log: $LOG_FILE)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 -- "$LOG_FILE" >&2
            kill_broker "$pid"
            die 1 "the broker did not start within ${KAFKA_START_TIMEOUT}s (log above, full log: $LOG_FILE)"
        fi
        sleep 0.1
    done
}

cmd_start() {
    require_state_dir
    check_port "$KAFKA_PORT"
    check_port "$KAFKA_CONTROLLER_PORT"
    [[ $KAFKA_START_TIMEOUT =~ ^[0-9]+$ ]] || die 2 "KAFKA_START_TIMEOUT must be whole seconds: '$KAFKA_START_TIMEOUT'"
    cmd_fetch
    local java pid
    java=$(java_bin)
    # One start at a time per state dir; fd 9 is closed for the broker so it does not hold the lock.
    exec 9>"$KAFKA_STATE_DIR/.lock"
    flock 9
    if pid=$(broker_pid); then
        local port
        port=$(configured_port) || true
        if [[ -n $port && $port != "$KAFKA_PORT" ]]; then
            die 1 "a broker (pid $pid) already runs from $KAFKA_STATE_DIR on port $port, not $KAFKA_PORT; stop it first"
        fi
        if ! port_open; then
            wait_ready "$pid" # started by someone else and still coming up
        fi
        echo "kafka.sh: already running (pid $pid)" >&2
        echo "127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    rm -f -- "$PID_FILE"
    if port_open; then
        die 1 "port $KAFKA_PORT is already in use by another process"
    fi
    mkdir -p -- "$KAFKA_STATE_DIR/data"
    [[ -f $LOG_FILE ]] && mv -f -- "$LOG_FILE" "$LOG_FILE.prev"
    : >"$LOG_FILE"
    write_configs
    format_storage "$java"
    jvm_flags broker
    # The child writes its own pid before exec'ing java, so the pid is right whether or not setsid forks.
    # KAFKA_HEAP is split into words on purpose.
    # shellcheck disable=SC2086,SC2016
    setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launch "$PID_FILE.new" \
        "$java" $KAFKA_HEAP "${JVM[@]}" \
        -Dlog4j.configuration="file:$KAFKA_STATE_DIR/log4j.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_STATE_DIR/server.properties" \
        </dev/null >>"$LOG_FILE" 2>&1 8>&- 9>&- &
    local deadline=$((SECONDS + 5))
    until [[ -s $PID_FILE.new ]]; do
        ((SECONDS < deadline)) || die 1 "could not launch java (see $LOG_FILE)"
        sleep 0.02
    done
    mv -f -- "$PID_FILE.new" "$PID_FILE"
    pid=$(<"$PID_FILE")
    wait_ready "$pid"
    echo "kafka.sh: started pid $pid, log $LOG_FILE" >&2
    echo "127.0.0.1:$KAFKA_PORT"
}

kill_broker() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "kafka.sh: pid $pid ignored SIGTERM for 20 s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    rm -f -- "$PID_FILE"
}

cmd_stop() {
    require_state_dir
    local pid
    if pid=$(broker_pid); then
        kill_broker "$pid"
        echo "kafka.sh: stopped pid $pid" >&2
    else
        rm -f -- "$PID_FILE"
        echo "kafka.sh: not running" >&2
    fi
}

cmd_status() {
    require_state_dir
    local pid port
    # Without KAFKA_PORT, report on the port this state dir's broker was configured with.
    if [[ -z $PORT_GIVEN ]] && port=$(configured_port) && [[ -n $port ]]; then
        KAFKA_PORT=$port
    fi
    if pid=$(broker_pid); then
        if port_open; then
            echo "running pid=$pid bootstrap=127.0.0.1:$KAFKA_PORT"
            return 0
        fi
        echo "starting pid=$pid bootstrap=127.0.0.1:$KAFKA_PORT" # or hung: not serving yet
        return 1
    fi
    echo "stopped"
    return 1
}

[[ $# -eq 1 ]] || usage
case $1 in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
