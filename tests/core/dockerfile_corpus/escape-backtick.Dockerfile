# escape=`
FROM mcr.microsoft.com/windows
COPY a\b c:\d\
RUN dir `
    c:\
ENV P=c:\x y=`"q`"
