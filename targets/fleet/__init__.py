"""A fleet of boards: the parity suite over the places of a labgrid board farm (``wherry fleet``).

labgrid does the farm's work - its coordinator knows the places, exporters publish each board's
``NetworkService`` (an HTTP runner or an ssh login), users reserve and lock places. wherry adds
what is its own: turning a place into a wherry device (``labgrid_driver``), running the checks
over every place a job reserved (``job``), and one matrix of the results (``report``).

Only ``job`` and ``labgrid_driver`` import labgrid (the optional extra ``wherry[labgrid]``).
"""
