# SPDX-License-Identifier: LGPL-2.1-only
# Sourced by the bench scripts: nginx_hello_conf DIR LISTEN... writes
# DIR/nginx.conf for one worker in the foreground that answers GET /hello
# with "hello, world\n" (temporary files and its pid file in DIR); each
# LISTEN is an nginx listen argument ("127.0.0.1:8080", "127.0.0.1:8081 http2").
nginx_hello_conf() {
    dir=$1
    shift
    {
        cat <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid.run;
error_log /dev/null;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir;
    proxy_temp_path $dir;
    fastcgi_temp_path $dir;
    uwsgi_temp_path $dir;
    scgi_temp_path $dir;
    server {
CONF
        for l in "$@"; do
            echo "        listen $l;"
        done
        cat <<CONF
        keepalive_requests 1000000;
        location = /hello { default_type text/plain; return 200 "hello, world\n"; }
    }
}
CONF
    } > "$dir/nginx.conf"
}
