FROM busybox
RUN <<EOF
echo hi
echo there
EOF
RUN <<-EOT cat > /x
	indented
	EOT
RUN <<"EOF" bash
echo $HOME
EOF
RUN cat <<A <<B
one
A
two
B
