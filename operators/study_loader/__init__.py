"""Study loader robust to bad files. The pure part is ``operators.common.dicom_files``; the operator
(``operators.study_loader.operator.CTStudyLoaderOperator``) builds the SDK's DICOMStudy objects."""
