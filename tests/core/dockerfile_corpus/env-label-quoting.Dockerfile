FROM busybox
ENV A=1 B="two words" C=three\ four
ENV LEGACY the rest of the line
LABEL "com.example.x y"="v" other='single $X'
LABEL multi="a \
b"
MAINTAINER Jane Doe <jane@example.com>
