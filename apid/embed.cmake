# Turn a file into a C byte array (run with cmake -P, IN and OUT set).
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT}.tmp "/* Generated from ${IN}; do not edit. */\n#include <stddef.h>\n#include \"apid/apid.h\"\n\nconst char apid_openapi_json[] = {\n${bytes}0x00 };\nconst size_t apid_openapi_json_len = sizeof(apid_openapi_json) - 1;\n")
file(RENAME ${OUT}.tmp ${OUT})
