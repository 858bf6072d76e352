# Turns db/schema.sql into a C string so that the binary carries its schema.
file(READ ${IN} SQL)
string(REPLACE "\\" "\\\\" SQL "${SQL}")
string(REPLACE "\"" "\\\"" SQL "${SQL}")
string(REPLACE "\n" "\\n\"\n\"" SQL "${SQL}")
file(WRITE ${OUT} "/* generated from db/schema.sql */\nconst char db_schema_sql[] = \"${SQL}\";\n")
