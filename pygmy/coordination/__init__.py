"""
Where the views are stored, so that no view is lost with the front end.

A view is stored before it is pushed to anyone (DESIGN.md section 6): the
front end that manages the views begins, after a restart, from the last
view it stored, and never promotes a replica outside that view's in-sync
set.  L{ViewStore<pygmy.coordination.store.ViewStore>} is what the front end
needs of a store; L{FileViewStore<pygmy.coordination.local.FileViewStore>}
keeps the views of a lone front end in a file of its C{data_dir}.
"""
