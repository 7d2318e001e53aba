-- From version 4 to 5: a service's tables may have derived columns, which
-- each replica computes from a row's other columns for an index and which
-- no dump, snapshot, log entry or digest carries (the catalog's topic_key:
-- the topic folded as pygmy.net.validate.fold_topic folds it, so that a
-- search matches any letter case of any script through an index, where the
-- books_topic index of version 4 and its COLLATE NOCASE folded ASCII only).
--
-- SQL cannot fold Unicode: the Python step that runs after this file at
-- every open (database.add_derived) adds each missing derived column, fills
-- it from the rows and indexes it, in the same transaction.  The version
-- changes so that an older Pygmy, which would write rows without them,
-- refuses the file.

UPDATE meta SET value = 5 WHERE key = 'schema_version';
