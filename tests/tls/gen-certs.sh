#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Test certificates, made at test time (no key is ever committed):
#   ca.pem            the test CA
#   server.pem/.key   signed by it, for localhost, 127.0.0.1 and ::1
#   wronghost.pem/.key  signed by it, for "not-this-host.example"
#   expired.pem/.key  signed by it, for localhost, expired
#   rogue-ca.pem, untrusted.pem/.key  a second CA nobody trusts, and a
#                     localhost certificate it signed
# usage: gen-certs.sh DIR
set -eu
d=$1
mkdir -p "$d"
cd "$d"
[ -f done ] && exit 0

ossl() { openssl "$@" >/dev/null 2>&1; }

mkca() { # name subject
    ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=$2" -keyout "$1.key" -out "$1.pem"
}
mkcert() { # name ca san days_or_"expired"
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=evpl-test" \
        -keyout "$1.key" -out "$1.csr"
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$3" > "$1.ext"
    if [ "$4" = expired ]; then
        # validity that ended long ago: "openssl ca" takes explicit dates
        mkdir -p ca.db && : > ca.db/index.txt && echo 1000 > ca.db/serial
        cat > ca.cnf <<CNF
[ ca ]
default_ca = t
[ t ]
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = p
[ p ]
commonName = supplied
CNF
        ossl ca -batch -config ca.cnf -cert "$2.pem" -keyfile "$2.key" -in "$1.csr" \
            -out "$1.pem" -startdate 20200101000000Z -enddate 20200102000000Z -extfile "$1.ext"
    else
        ossl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
            -days "$4" -extfile "$1.ext" -out "$1.pem"
    fi
    rm -f "$1.csr" "$1.ext"
}

mkca ca "evpl test CA"
mkca rogue-ca "evpl rogue CA"
mkcert server ca "DNS:localhost,IP:127.0.0.1,IP:::1" 30
mkcert wronghost ca "DNS:not-this-host.example" 30
mkcert expired ca "DNS:localhost,IP:127.0.0.1" expired
mkcert untrusted rogue-ca "DNS:localhost,IP:127.0.0.1" 30
for f in server wronghost expired untrusted; do
    test -s "$f.pem" || { echo "gen-certs: $f.pem missing" >&2; exit 1; }
done
touch done
