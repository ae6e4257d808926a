#!/usr/bin/env bash
# A one-node Slurm cluster on this machine for the Slurm profile test (tests/test_slurm.py):
# Debian's slurm-wlm, slurmdbd, munge and mariadb (so that sacct works), configured in a
# private folder, torn down by `cluster.sh stop DIR`.
#   cluster.sh start DIR     install the packages if needed, configure, start, wait until idle
#   cluster.sh stop DIR      stop every daemon this script started
# Needs root (apt-get, daemons); prints one line and exits 3 when the machine cannot run it.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?folder}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
log() { echo "[slurm] $*" >&2; }
cannot() { echo "cannot start Slurm here: $*"; exit 3; }

stop() {
  for name in slurmd slurmctld slurmdbd; do pkill -f "^$name " 2>/dev/null || pkill -x "$name" 2>/dev/null || true; done
  for f in slurm.conf slurmdbd.conf cgroup.conf; do
    [ "$(readlink /etc/slurm/$f 2>/dev/null)" = "$dir/$f" ] && rm -f "/etc/slurm/$f"
  done
  [ -f "$dir/mariadb.pid" ] && kill "$(cat "$dir/mariadb.pid")" 2>/dev/null || true
  [ -f "$dir/munged.pid" ] && kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
  sleep 1
  log "stopped"
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$(id -u)" = 0 ] || cannot "needs root (apt-get and the Slurm daemons)"
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  log "installing slurm-wlm slurmdbd munge mariadb-server (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server >"$dir/apt.log" 2>&1 \
    || cannot "apt-get install failed (see $dir/apt.log)"
fi
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$dir"/{spool,state,log,db,run}

# munge: a fresh key for this cluster
mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
runuser -u munge -- munged --force --pid-file=/run/munge/munged.pid 2>"$dir/log/munged.err" || munged --force 2>>"$dir/log/munged.err" \
  || cannot "munged did not start ($(head -c 200 "$dir/log/munged.err"))"
cp /run/munge/munged.pid "$dir/munged.pid" 2>/dev/null || true

# mariadb for slurmdbd (accounting, so that sacct answers)
if [ ! -d "$dir/db/mysql" ]; then
  mariadb-install-db --user=root --datadir="$dir/db" >"$dir/log/mariadb-install.log" 2>&1 || cannot "mariadb-install-db failed"
fi
mariadbd --user=root --datadir="$dir/db" --socket="$dir/run/mysql.sock" --pid-file="$dir/mariadb.pid" \
  --skip-networking=0 --bind-address=127.0.0.1 --port=3307 >"$dir/log/mariadb.log" 2>&1 &
for _ in $(seq 60); do mariadb -uroot --socket="$dir/run/mysql.sock" -e "select 1" >/dev/null 2>&1 && break; sleep 0.5; done
mariadb -uroot --socket="$dir/run/mysql.sock" -e "create database if not exists slurm_acct_db;
  create user if not exists 'slurm'@'127.0.0.1' identified by 'slurmci';
  grant all on slurm_acct_db.* to 'slurm'@'127.0.0.1'; flush privileges;" || cannot "mariadb did not start"

cat >"$dir/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=slurmci
StorageLoc=slurm_acct_db
CONF
chmod 600 "$dir/slurmdbd.conf"
cat >"$dir/slurm.conf" <<CONF
ClusterName=ci
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$dir/cgroup.conf" <<CONF
CgroupPlugin=autodetect
IgnoreSystemd=yes
CONF
# jobs (and srun inside them) read the default location: link this cluster's files there
mkdir -p /etc/slurm
for f in slurm.conf slurmdbd.conf cgroup.conf; do
  if [ -e "/etc/slurm/$f" ] && [ "$(readlink "/etc/slurm/$f")" != "$dir/$f" ]; then
    [ -L "/etc/slurm/$f" ] || cannot "/etc/slurm/$f exists and belongs to another Slurm installation"
  fi
  ln -sfn "$dir/$f" "/etc/slurm/$f"
done
export SLURM_CONF="$dir/slurm.conf"
slurmdbd || cannot "slurmdbd did not start ($(tail -1 "$dir/log/slurmdbd.log" 2>/dev/null))"
for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -i add cluster ci >/dev/null 2>&1 || true
slurmctld -f "$dir/slurm.conf" || cannot "slurmctld did not start"
slurmd -f "$dir/slurm.conf" || cannot "slurmd did not start ($(tail -1 "$dir/log/slurmd.log" 2>/dev/null))"
for _ in $(seq 60); do
  state=$(sinfo -h -o %t 2>/dev/null | head -1)
  [ "$state" = idle ] && { log "one-node cluster idle (SLURM_CONF=$dir/slurm.conf)"; echo "$dir/slurm.conf"; exit 0; }
  sleep 0.5
done
cannot "the node never became idle (state '$state'; see $dir/log/slurmd.log)"
