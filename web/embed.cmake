# embed.cmake — turns the dashboard's files into one C source, run at build time by
# web/CMakeLists.txt:  cmake -DOUT=web_assets.c -DLIST=assets.list -P embed.cmake
# where each line of assets.list is <url>|<file>|<content type>.
#
# Promises: every asset becomes a const byte array (no file is read at run time, so canaryd
# serves its dashboard with no web server and no internet), with a gzip copy when that is
# smaller, and an ETag that changes exactly when the bytes do (SHA-256 of the content).
cmake_minimum_required(VERSION 3.20)

get_filename_component(out_dir "${OUT}" DIRECTORY)
set(tmp "${out_dir}/embed.tmp")
file(MAKE_DIRECTORY "${tmp}")

set(body "")
set(table "")
set(i 0)
file(STRINGS "${LIST}" ASSETS)
foreach(entry IN LISTS ASSETS)
    string(REPLACE "|" ";" parts "${entry}")
    list(GET parts 0 url)
    list(GET parts 1 path)
    list(GET parts 2 type)
    if(type MATCHES "^text/")
        string(APPEND type "; charset=utf-8")
    endif()
    get_filename_component(name "${path}" NAME)
    file(SIZE "${path}" size)
    file(READ "${path}" hex HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
    string(APPEND body "static const unsigned char a${i}[] = {${hex}0};\n")

    configure_file("${path}" "${tmp}/${name}" COPYONLY)
    file(ARCHIVE_CREATE OUTPUT "${tmp}/${name}.gz" PATHS "${tmp}/${name}" FORMAT raw
         COMPRESSION GZip COMPRESSION_LEVEL 9)
    file(SIZE "${tmp}/${name}.gz" gz_size)
    if(gz_size LESS size)
        file(READ "${tmp}/${name}.gz" gz HEX)
        string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," gz "${gz}")
        string(APPEND body "static const unsigned char g${i}[] = {${gz}0};\n")
        set(gz_ref "g${i}, ${gz_size}")
    else()
        set(gz_ref "NULL, 0")
    endif()
    file(SHA256 "${path}" sha)
    string(SUBSTRING "${sha}" 0 20 etag)
    string(APPEND table "    {\"${url}\", \"${type}\", \"\\\"${etag}\\\"\", a${i}, ${size}, ${gz_ref}},\n")
    math(EXPR i "${i} + 1")
endforeach()

set(text "/* web_assets.c — generated at build time by web/embed.cmake from web/; do not edit. */\n")
string(APPEND text "#include \"web_assets.h\"\n\n#include <stddef.h>\n\n${body}\n")
string(APPEND text "const struct web_asset web_assets[] = {\n${table}};\n")
string(APPEND text "const size_t web_assets_count = ${i};\n")
# Rewrite only on change, so an unchanged dashboard does not relink canaryd.
set(new "${OUT}.new")
file(WRITE "${new}" "${text}")
file(COPY_FILE "${new}" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${new}")
