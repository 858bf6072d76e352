# Turns an SQL file into a C string (named VAR) so that the binary carries
# its schema and migrations.
file(READ ${IN} SQL)
string(REPLACE "\\" "\\\\" SQL "${SQL}")
string(REPLACE "\"" "\\\"" SQL "${SQL}")
string(REPLACE "\n" "\\n\"\n\"" SQL "${SQL}")
if(NOT VAR)
  set(VAR db_schema_sql)
endif()
file(WRITE ${OUT} "/* generated from ${IN} */\nconst char ${VAR}[] = \"${SQL}\";\n")
