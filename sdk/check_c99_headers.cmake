# check_c99_headers.cmake — fails when an SDK core source includes a system header that is not
# part of the C99 standard library (ISO/IEC 9899:1999 §7.1.2), so the core stays portable to
# ESP-IDF and bare-metal newlib. The mbedtls header behind CDEV_USE_MBEDTLS and the SDK's own
# headers ("...") are allowed. Usage: cmake -DSOURCES="a.c|b.c" -P check_c99_headers.cmake
set(allowed assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h
    locale.h math.h setjmp.h signal.h stdarg.h stdbool.h stddef.h stdint.h stdio.h stdlib.h
    string.h tgmath.h time.h wchar.h wctype.h mbedtls/md.h)
string(REPLACE "|" ";" SOURCES "${SOURCES}")
foreach(src ${SOURCES})
    file(STRINGS ${src} includes REGEX "^[ \t]*#[ \t]*include[ \t]*<")
    foreach(line ${includes})
        string(REGEX REPLACE ".*<([^>]+)>.*" "\\1" header "${line}")
        list(FIND allowed "${header}" found)
        if(found EQUAL -1)
            message(FATAL_ERROR "${src}: <${header}> is not a C99 standard header; the SDK core "
                                "must build with the standard C library alone (docs/SDK.md)")
        endif()
    endforeach()
endforeach()
