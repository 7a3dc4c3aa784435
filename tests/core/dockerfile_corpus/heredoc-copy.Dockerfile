FROM scratch
COPY <<EOF /etc/app.conf
port=8080
EOF
COPY --chmod=600 <<a.txt <<b.txt /dir/
aaa
a.txt
bbb
b.txt
